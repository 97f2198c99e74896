import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/errors.ts';
import { decodeBase64, decodeDataUrl, decodeImageField } from '../../src/serving/image-payload.ts';

const bytes = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0xff, 0xfe, 0x00]);
const b64 = Buffer.from(bytes).toString('base64');
const isCode = (code: string) => (e: unknown) => e instanceof ApiError && e.code === code;

test('base64: standard, wrapped in whitespace/newlines, and base64url all decode to the same bytes', () => {
  assert.deepEqual(decodeBase64(b64), bytes);
  assert.deepEqual(decodeBase64(` ${b64.slice(0, 4)}\n${b64.slice(4)} `), bytes);
  assert.deepEqual(decodeBase64(Buffer.from(bytes).toString('base64url')), bytes);
});

test('base64: garbage, impossible lengths and empty payloads are bad_base64', () => {
  for (const bad of ['not base64!', 'ab=c', 'A', '====', '', 'a+b_c']) assert.throws(() => decodeBase64(bad), isCode('bad_base64'), bad);
});

test('base64: unpadded and non-canonical payloads decode as before; one bad character anywhere is refused', () => {
  const big = Buffer.from(Array.from({ length: 30_000 }, (_, i) => (i * 7919) % 256));
  const text = big.toString('base64');
  assert.deepEqual(decodeBase64(text), new Uint8Array(big));
  assert.deepEqual(decodeBase64(text.replace(/=+$/, '')), new Uint8Array(big)); // unpadded
  assert.deepEqual(decodeBase64(big.toString('base64url')), new Uint8Array(big));
  // 'QR==' has trailing bits set (canonical is 'QQ=='): not what an encoder writes, accepted all along.
  assert.deepEqual(decodeBase64('QR=='), Uint8Array.from([0x41]));
  for (const at of [0, 17_000, text.length - 3]) {
    const bad = `${text.slice(0, at)}*${text.slice(at + 1)}`;
    assert.throws(() => decodeBase64(bad), isCode('bad_base64'), `bad character at ${at}`);
  }
  // Both alphabets at once ('+' standard, '_' url-safe): each alone decodes, together refused.
  assert.deepEqual(decodeBase64('ab+c'), new Uint8Array(Buffer.from('ab+c', 'base64')));
  assert.deepEqual(decodeBase64('ab_c'), new Uint8Array(Buffer.from('ab_c', 'base64url')));
  assert.throws(() => decodeBase64('a+_c'), isCode('bad_base64'));
});

test('data: URLs must be base64; the declared type does not matter', () => {
  assert.deepEqual(decodeDataUrl(`data:image/png;base64,${b64}`), bytes);
  assert.deepEqual(decodeDataUrl(`data:application/dicom;base64,${b64}`), bytes);
  assert.throws(() => decodeDataUrl('data:image/png,%89PNG'), isCode('bad_base64'));
  assert.throws(() => decodeDataUrl('data:image/png;base64'), isCode('bad_base64'));
  assert.deepEqual(decodeImageField(`data:image/png;base64,${b64}`), bytes);
  assert.deepEqual(decodeImageField(b64), bytes);
});
