// Images that arrive as text (JSON base64, OpenAI `data:` URLs) → bytes. Strict: a payload that
// is not exactly base64 is refused with bad_base64 rather than decoded leniently into garbage.
import { ApiError } from '../errors.ts';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;
const DATA_URL = /^data:([^,;]*)((?:;[^,;]*)*?),(.*)$/s;

export function decodeBase64(text: string, what = 'image'): Uint8Array {
  const compact = text.replace(/\s+/g, '');
  // Each regex scans the whole payload (tens of kB per request), so each runs at most once.
  const standard = BASE64.test(compact);
  const urlSafe = !standard && BASE64URL.test(compact);
  if ((!standard && !urlSafe) || compact.length % 4 === 1 || !/[^=]/.test(compact)) {
    throw ApiError.of('bad_base64', `The ${what} is not valid base64.`);
  }
  return new Uint8Array(Buffer.from(compact, urlSafe ? 'base64url' : 'base64'));
}

/** `data:<type>;base64,<data>` → bytes. The declared type is ignored: the format is read from the bytes. */
export function decodeDataUrl(url: string): Uint8Array {
  const match = DATA_URL.exec(url.trim());
  if (!match) throw ApiError.of('bad_base64', 'The image URL is not a valid data: URL.');
  const isBase64 = match[2]!.split(';').some((p) => p.trim().toLowerCase() === 'base64');
  if (!isBase64) throw ApiError.of('bad_base64', 'The image data: URL must be base64-encoded (data:<type>;base64,…).');
  return decodeBase64(match[3]!);
}

/** JSON `image`: plain base64 or a data: URL. */
export function decodeImageField(value: string): Uint8Array {
  return value.trimStart().startsWith('data:') ? decodeDataUrl(value) : decodeBase64(value);
}
