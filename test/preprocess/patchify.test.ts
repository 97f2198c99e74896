import assert from 'node:assert/strict';
import { test } from 'node:test';
import { patchify } from '../../src/preprocess/patchify.ts';

const IDENTITY = { mean: [0, 0, 0], std: [1, 1, 1] } as const;

/** size x size RGB where R = x, G = y, B = 100 + 10 * (x + y): every sample names its position. */
function coordinateRaster(size: number): Uint8Array {
  const rgb = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) rgb.set([x, y, 100 + 10 * (x + y)], (y * size + x) * 3);
  }
  return rgb;
}

test('4x4 image in 2x2 patches: patches in raster order, pixels row-major, channels interleaved', () => {
  const out = patchify(coordinateRaster(4), 4, 2, IDENTITY.mean, IDENTITY.std);
  assert.equal(out.length, 4 * 2 * 2 * 3);
  const pixel = (x: number, y: number) => [x / 255, y / 255, (100 + 10 * (x + y)) / 255];
  // Hand-written order: patch (0,0), (1,0), (0,1), (1,1); in each, (0,0) (1,0) (0,1) (1,1).
  const expected = [
    ...pixel(0, 0),
    ...pixel(1, 0),
    ...pixel(0, 1),
    ...pixel(1, 1),
    ...pixel(2, 0),
    ...pixel(3, 0),
    ...pixel(2, 1),
    ...pixel(3, 1),
    ...pixel(0, 2),
    ...pixel(1, 2),
    ...pixel(0, 3),
    ...pixel(1, 3),
    ...pixel(2, 2),
    ...pixel(3, 2),
    ...pixel(2, 3),
    ...pixel(3, 3),
  ];
  assert.deepEqual(Array.from(out), Array.from(Float32Array.from(expected)));
});

test('per-channel mean and std: (v / 255 - mean[c]) / std[c]', () => {
  const mean = [0.485, 0.456, 0.406];
  const std = [0.229, 0.224, 0.225];
  const rgb = Uint8Array.of(0, 128, 255);
  const out = patchify(rgb, 1, 1, mean, std);
  assert.deepEqual(Array.from(out), [
    Math.fround((0 / 255 - 0.485) / 0.229),
    Math.fround((128 / 255 - 0.456) / 0.224),
    Math.fround((255 / 255 - 0.406) / 0.225),
  ]);
});

test('one patch covering the whole image is the image in HWC order', () => {
  const rgb = coordinateRaster(8);
  assert.deepEqual(
    Array.from(patchify(rgb, 8, 8, IDENTITY.mean, IDENTITY.std)),
    Array.from(rgb, (v) => Math.fround(v / 255)),
  );
});

test('rejects sizes, buffers and statistics that do not fit', () => {
  const rgb = coordinateRaster(4);
  assert.throws(() => patchify(rgb, 4, 3, IDENTITY.mean, IDENTITY.std), RangeError);
  assert.throws(() => patchify(rgb, 4, 0, IDENTITY.mean, IDENTITY.std), RangeError);
  assert.throws(() => patchify(rgb, 4, 8, IDENTITY.mean, IDENTITY.std), RangeError);
  assert.throws(() => patchify(rgb.subarray(1), 4, 2, IDENTITY.mean, IDENTITY.std), RangeError);
  assert.throws(() => patchify(rgb, 4, 2, [0, 0], IDENTITY.std), RangeError);
  assert.throws(() => patchify(rgb, 4, 2, IDENTITY.mean, [1, 0, 1]), RangeError);
  assert.throws(() => patchify(rgb, 4, 2, IDENTITY.mean, [1, Number.NaN, 1]), RangeError);
});
