import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { estimateDecodeCost } from '../../src/preprocess/decode-cost.ts';
import { realJpeg } from '../helpers/images.ts';

test('PNG: width x height x samples x bytes per sample, from the IHDR chunk', async () => {
  const rgba16 = await sharp({ create: { width: 300, height: 200, channels: 4, background: { r: 10, g: 20, b: 30, alpha: 1 } } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();
  assert.deepEqual(estimateDecodeCost(rgba16, 96), { format: 'png', width: 300, height: 200, decodedBytes: 300 * 200 * 4 * 2 });
  const grey8 = await sharp({ create: { width: 64, height: 32, channels: 3, background: { r: 9, g: 9, b: 9 } } })
    .toColourspace('b-w')
    .png()
    .toBuffer();
  assert.deepEqual(estimateDecodeCost(grey8, 96), { format: 'png', width: 64, height: 32, decodedBytes: 64 * 32 });
});

test('JPEG: the frame header, with the shrink-on-load libjpeg applies for a small target', async () => {
  const meta = await sharp(realJpeg).metadata();
  const cost = estimateDecodeCost(realJpeg, 96)!;
  assert.equal(cost.width, meta.width);
  assert.equal(cost.height, meta.height);
  const big = await sharp({ create: { width: 4096, height: 2048, channels: 3, background: { r: 1, g: 2, b: 3 } } })
    .jpeg()
    .toBuffer();
  // 4096 / 8 = 512 >= 96: decoded at 1/8 scale.
  assert.equal(estimateDecodeCost(big, 96)!.decodedBytes, 512 * 256 * 3);
  // For a 1024 target only 1/4 is possible (4096 / 4 = 1024).
  assert.equal(estimateDecodeCost(big, 1024)!.decodedBytes, 1024 * 512 * 3);
});

test('unreadable or unknown bytes: no estimate', () => {
  assert.equal(estimateDecodeCost(new Uint8Array([1, 2, 3]), 96), undefined);
  assert.equal(estimateDecodeCost(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]), 96), undefined);
  assert.equal(estimateDecodeCost(Uint8Array.from([0xff, 0xd8, 0xff, 0xda, 0, 4, 0, 0]), 96), undefined);
});
