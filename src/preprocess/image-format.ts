// Decide what an upload is from its first bytes. The filename and Content-Type come from the
// client and are often wrong (PACS exports named .jpg, browsers sending application/octet-stream),
// so they are never consulted.

export type ImageFormat = 'png' | 'jpeg' | 'dicom';

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
// SOI marker followed by the first byte of the next marker.
const JPEG_SIGNATURE = [0xff, 0xd8, 0xff];
// DICOM Part 10 (PS3.10 7.1): a 128-byte preamble, then the letters "DICM".
export const DICOM_PREAMBLE_LENGTH = 128;
const DICM = [0x44, 0x49, 0x43, 0x4d];

function startsWithAt(bytes: Uint8Array, offset: number, expected: readonly number[]): boolean {
  if (bytes.length < offset + expected.length) return false;
  return expected.every((b, i) => bytes[offset + i] === b);
}

/** True for a Part 10 file with its preamble and "DICM" prefix. */
export function hasDicomPreamble(bytes: Uint8Array): boolean {
  return startsWithAt(bytes, DICOM_PREAMBLE_LENGTH, DICM);
}

/**
 * True for a Part 10 file whose writer dropped the preamble and prefix, so the bytes start
 * directly with the file meta group: tag (0002,eeee) little endian, then an explicit VR
 * (the meta group is always explicit VR little endian, PS3.10 7.1). Requiring group 0002 *and*
 * a plausible VR keeps random bytes and other formats from matching.
 */
export function isDicomMetaHeaderWithoutPreamble(bytes: Uint8Array): boolean {
  if (bytes.length < 8 || bytes[0] !== 0x02 || bytes[1] !== 0x00) return false;
  const vr = String.fromCharCode(bytes[4]!, bytes[5]!);
  return vr === 'UL' || vr === 'OB' || vr === 'UI';
}

/** The format the bytes are in, or undefined when they are none of the supported ones. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (startsWithAt(bytes, 0, PNG_SIGNATURE)) return 'png';
  if (startsWithAt(bytes, 0, JPEG_SIGNATURE)) return 'jpeg';
  if (hasDicomPreamble(bytes) || isDicomMetaHeaderWithoutPreamble(bytes)) return 'dicom';
  return undefined;
}
