// Rewrites the dimensions a PNG or JPEG header declares without touching its pixel data, to make
// "pixel bombs" (huge declared size, tiny file) in tests instead of shipping binary fixtures.

function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** A copy of `png` whose IHDR says width x height, with a valid CRC so libpng reads it. */
export function withPngDimensions(png: Uint8Array, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  // Signature (8), IHDR length (4), "IHDR" (4), then width and height; the CRC covers type + data.
  if (out.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG starting with IHDR');
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)), 29);
  return out;
}

/** A copy of `jpeg` whose start-of-frame segment says width x height (each at most 65535). */
export function withJpegDimensions(jpeg: Uint8Array, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  let offset = 2; // after SOI
  while (offset + 4 <= out.length && out[offset] === 0xff) {
    const marker = out[offset + 1]!;
    const segmentLength = out.readUInt16BE(offset + 2);
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      out.writeUInt16BE(height, offset + 5);
      out.writeUInt16BE(width, offset + 7);
      return out;
    }
    offset += 2 + segmentLength;
  }
  throw new Error('no start-of-frame segment found');
}
