// Structural completeness of a PNG, checked before decoding. libpng already fails on a file cut
// inside its image data, but a file cut after the last IDAT (only IEND lost) decodes without
// complaint; an upload that lost bytes in transit is refused whole rather than trusted in part.

const SIGNATURE_LENGTH = 8;
// length (4) + type (4) before the data, CRC (4) after it (PNG spec 5.3).
const CHUNK_OVERHEAD = 12;
const IEND = 0x49454e44;

/**
 * True when walking the chunk sequence from the signature reaches a whole IEND chunk inside the
 * bytes. Bytes after IEND are tolerated: some writers append data there, and decoders ignore it.
 * Cost is one step per chunk, not per byte.
 */
export function pngHasCompleteChunks(bytes: Uint8Array): boolean {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let offset = SIGNATURE_LENGTH;
  while (offset + CHUNK_OVERHEAD <= bytes.length) {
    const dataLength = view.getUint32(offset);
    const type = view.getUint32(offset + 4);
    const end = offset + CHUNK_OVERHEAD + dataLength;
    if (end > bytes.length) return false;
    if (type === IEND) return true;
    offset = end;
  }
  return false;
}
