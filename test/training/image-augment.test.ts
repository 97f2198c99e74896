// Augmentation must be reproducible from its seed, do nothing when switched to zero strength, and
// never mirror the image (left/right is part of many answers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { augmentRaster } from '../../src/training/image-augment.ts';
import { requestRng } from '../../src/runtime/sampling.ts';

const SIZE = 32;

/** Bright left half, dark right half, a gradient down the rows. */
function leftBright(): Uint8Array {
  const rgb = new Uint8Array(SIZE * SIZE * 3);
  for (let y = 0; y < SIZE; y++) for (let x = 0; x < SIZE; x++) for (let c = 0; c < 3; c++) rgb[(y * SIZE + x) * 3 + c] = (x < SIZE / 2 ? 200 : 30) + y;
  return rgb;
}

function halfMeans(rgb: Uint8Array): [number, number] {
  let l = 0;
  let r = 0;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      if (x < SIZE / 2) l += rgb[(y * SIZE + x) * 3]!;
      else r += rgb[(y * SIZE + x) * 3]!;
    }
  }
  const n = (SIZE * SIZE) / 2;
  return [l / n, r / n];
}

test('the same seed gives the same copy, another seed another copy', () => {
  const img = leftBright();
  const a = augmentRaster(img, SIZE, requestRng(5));
  assert.deepEqual(augmentRaster(img, SIZE, requestRng(5)), a);
  assert.notDeepEqual(augmentRaster(img, SIZE, requestRng(6)), a);
  assert.notDeepEqual(a, img);
});

test('zero strength returns the image unchanged', () => {
  const img = leftBright();
  assert.deepEqual(augmentRaster(img, SIZE, requestRng(1), { minScale: 1, contrastJitter: 0, brightnessJitter: 0 }), img);
});

test('no copy is mirrored: the bright side stays on the left', () => {
  const img = leftBright();
  for (let seed = 0; seed < 25; seed++) {
    const [l, r] = halfMeans(augmentRaster(img, SIZE, requestRng(seed)));
    assert.ok(l > r + 100, `seed ${seed}: left ${l.toFixed(1)} right ${r.toFixed(1)}`);
  }
});

test('a zoomed copy keeps the vertical order of the rows', () => {
  const img = leftBright();
  const out = augmentRaster(img, SIZE, requestRng(9), { minScale: 0.8, contrastJitter: 0, brightnessJitter: 0 });
  const at = (y: number) => out[(y * SIZE + 2) * 3];
  for (let y = 1; y < SIZE; y++) assert.ok(at(y) >= at(y - 1), `row ${y} darker than row ${y - 1}`);
});
