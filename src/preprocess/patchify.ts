// Square 8-bit RGB raster -> the vision encoder's patch sequence. Kept apart from decoding so the
// training pipeline can cache decoded rasters and re-patchify them (e.g. under other mean/std)
// without touching the image codecs again.

export const RGB_CHANNELS = 3;

/**
 * Returns Float32Array [numPatches, patchSize * patchSize * 3]: patches in raster order (left to
 * right, then top to bottom); inside a patch, pixels row-major with channels interleaved (HWC).
 * Each sample becomes (value / 255 - mean[c]) / std[c].
 *
 * @param rgb size * size * 3 bytes, HWC.
 */
export function patchify(rgb: Uint8Array, size: number, patchSize: number, mean: readonly number[], std: readonly number[]): Float32Array {
  if (!Number.isInteger(size) || !Number.isInteger(patchSize) || patchSize < 1 || size < patchSize || size % patchSize !== 0) {
    throw new RangeError(`patchify: patchSize ${patchSize} must be a positive integer dividing size ${size}.`);
  }
  if (rgb.length !== size * size * RGB_CHANNELS) {
    throw new RangeError(`patchify: expected ${size * size * RGB_CHANNELS} bytes for ${size}x${size} RGB, got ${rgb.length}.`);
  }
  if (mean.length !== RGB_CHANNELS || std.length !== RGB_CHANNELS || std.some((s) => !(s !== 0 && Number.isFinite(s)))) {
    throw new RangeError('patchify: mean and std need 3 finite values each, std non-zero.');
  }

  // One table per channel: the same byte always maps to the same float, so patchify is
  // deterministic and costs one table read per sample.
  const lut = new Float32Array(256 * RGB_CHANNELS);
  for (let c = 0; c < RGB_CHANNELS; c++) {
    for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - mean[c]!) / std[c]!;
  }

  const grid = size / patchSize;
  const rowBytes = patchSize * RGB_CHANNELS; // one pixel row of one patch
  const out = new Float32Array(rgb.length);
  let o = 0;
  for (let py = 0; py < grid; py++) {
    for (let px = 0; px < grid; px++) {
      for (let y = 0; y < patchSize; y++) {
        const rowStart = ((py * patchSize + y) * size + px * patchSize) * RGB_CHANNELS;
        for (let k = 0; k < rowBytes; k += RGB_CHANNELS) {
          out[o++] = lut[rgb[rowStart + k]!]!;
          out[o++] = lut[256 + rgb[rowStart + k + 1]!]!;
          out[o++] = lut[512 + rgb[rowStart + k + 2]!]!;
        }
      }
    }
  }
  return out;
}
