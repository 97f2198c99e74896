// A small, strict reader for the `.tar` / `.tar.gz` archives admins may upload instead of separate
// image parts. Only what a labelled dataset needs is accepted: regular files (ustar, GNU long names,
// pax `path`), directories (skipped). Links, devices and paths that could escape the upload folder
// are refused with the entry's name, and sizes are bounded before anything is buffered.
import { gunzipSync } from 'node:zlib';

export interface ArchiveEntry {
  /** POSIX path inside the archive, without a leading "./". */
  path: string;
  data: Buffer;
}

export interface ArchiveLimits {
  /** Largest uncompressed archive accepted (gunzip stops past it). */
  maxBytes: number;
  maxEntries: number;
}

/** The archive cannot be read, or breaks a limit; `message` names the entry and is safe to show. */
export class ArchiveError extends Error {
  override readonly name = 'ArchiveError';
  constructor(
    message: string,
    readonly tooLarge = false,
  ) {
    super(message);
  }
}

const BLOCK = 512;

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads a tar (gzip-compressed or not) into its regular files. */
export function readTarArchive(input: Buffer, limits: ArchiveLimits): ArchiveEntry[] {
  let tar = input;
  if (isGzip(input)) {
    try {
      tar = gunzipSync(input, { maxOutputLength: limits.maxBytes });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ERR_BUFFER_TOO_LARGE' || /maxOutputLength|Cannot create a Buffer larger/i.test(String((error as Error).message))) {
        throw new ArchiveError(`the archive unpacks to more than ${limits.maxBytes} bytes`, true);
      }
      throw new ArchiveError(`the archive is not valid gzip: ${(error as Error).message}`);
    }
  }
  if (tar.length > limits.maxBytes) throw new ArchiveError(`the archive is larger than ${limits.maxBytes} bytes`, true);
  if (tar.length < BLOCK) throw new ArchiveError('the archive is not a tar file (shorter than one 512-byte header)');

  const entries: ArchiveEntry[] = [];
  const seen = new Set<string>();
  let offset = 0;
  let longName: string | undefined;
  let paxPath: string | undefined;
  let headers = 0;
  while (offset + BLOCK <= tar.length) {
    const header = tar.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) break; // end-of-archive marker
    if (++headers > limits.maxEntries * 3 + 8) throw new ArchiveError(`the archive has more than ${limits.maxEntries} entries`, true);
    if (!checksumOk(header)) {
      throw new ArchiveError(offset === 0 ? 'the archive is not a tar file (bad header checksum)' : `corrupt tar header at byte ${offset}`);
    }
    const size = parseOctal(header.subarray(124, 136), offset);
    const type = String.fromCharCode(header[156] || 0x30);
    const dataStart = offset + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > tar.length) throw new ArchiveError(`the archive is truncated (entry at byte ${offset} needs ${size} bytes)`);
    const data = tar.subarray(dataStart, dataEnd);
    offset = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    if (type === 'L') {
      longName = cString(data);
      continue;
    }
    if (type === 'x') {
      paxPath = paxRecords(data).path ?? paxPath;
      continue;
    }
    if (type === 'g') continue; // global pax header: nothing we use
    const rawName = paxPath ?? longName ?? ustarName(header);
    longName = undefined;
    paxPath = undefined;
    const name = normaliseEntryPath(rawName);
    if (type === '5') continue;
    if (type !== '0' && type !== '7') {
      const kind = type === '1' ? 'a hard link' : type === '2' ? 'a symbolic link' : `an entry of type "${type}"`;
      throw new ArchiveError(`"${printable(rawName)}" is ${kind}; only regular files are accepted`);
    }
    if (name === null) throw new ArchiveError(`"${printable(rawName)}" is not a safe relative path (absolute, "..", or empty segments)`);
    if (seen.has(name)) throw new ArchiveError(`"${printable(name)}" appears twice in the archive`);
    seen.add(name);
    if (entries.length >= limits.maxEntries) throw new ArchiveError(`the archive has more than ${limits.maxEntries} files`, true);
    // Copy out of the (possibly huge) tar buffer so it can be freed.
    entries.push({ path: name, data: Buffer.from(data) });
  }
  return entries;
}

/** "./a/b.jpg" → "a/b.jpg"; null when the path is absolute, has ".." or is otherwise unsafe. */
export function normaliseEntryPath(raw: string): string | null {
  let p = raw;
  while (p.startsWith('./')) p = p.slice(2);
  if (p.endsWith('/')) p = p.slice(0, -1);
  if (p === '' || p.startsWith('/') || p.includes('\\') || p.includes('\0') || /^[A-Za-z]:/.test(p)) return null;
  const segments = p.split('/');
  if (segments.some((s) => s === '' || s === '..' || s === '.')) return null;
  return p;
}

function checksumOk(header: Buffer): boolean {
  const stored = header.subarray(148, 156);
  let expected: number;
  try {
    expected = parseOctal(stored, 0);
  } catch {
    return false;
  }
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === expected;
}

function parseOctal(field: Buffer, at: number): number {
  // GNU base-256 for sizes ≥ 8 GiB: far beyond any accepted archive.
  if (field[0]! & 0x80) throw new ArchiveError(`tar entry at byte ${at} is too large`, true);
  const text = cString(field).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new ArchiveError(`corrupt tar header at byte ${at} (bad number)`);
  return parseInt(text, 8);
}

function cString(bytes: Buffer): string {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end === -1 ? bytes.length : end).toString('utf8');
}

function ustarName(header: Buffer): string {
  const name = cString(header.subarray(0, 100));
  const magic = header.subarray(257, 262).toString('latin1');
  const prefix = magic === 'ustar' ? cString(header.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

/** pax extended header: records "<len> <key>=<value>\n". */
function paxRecords(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < data.length) {
    const space = data.indexOf(0x20, i);
    if (space === -1) break;
    const len = parseInt(data.subarray(i, space).toString('latin1'), 10);
    if (!Number.isFinite(len) || len <= 0 || i + len > data.length) break;
    const record = data.subarray(space + 1, i + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) out[record.slice(0, eq)] = record.slice(eq + 1);
    i += len;
  }
  return out;
}

function printable(name: string): string {
  return name.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}
