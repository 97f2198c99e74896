import { test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { ApiError } from '../../src/errors.ts';
import { preprocessImage, type PreprocessedImage, type PreprocessOptions } from '../../src/preprocess/image.ts';
import { PreprocessStage } from '../../src/serving/preprocess-stage.ts';
import { smallPng } from '../helpers/images.ts';

const OPTIONS: PreprocessOptions = {
  imageSize: 32,
  patchSize: 16,
  channels: 3,
  mean: [0.5, 0.5, 0.5],
  std: [0.25, 0.25, 0.25],
  maxInputPixels: 25_000_000,
  maxBytes: 20 * 1024 * 1024,
};
const STAGE = { concurrency: 1, maxQueue: 4, largeConcurrency: 1, largeMaxQueue: 1, largeDecodedBytes: 16 * 1024 * 1024 };

/** A 16-bit RGBA PNG whose samples take 2000 * 2000 * 8 = 32 MB: over the large threshold. */
const largePng = () =>
  sharp({ create: { width: 2000, height: 2000, channels: 4, background: { r: 1, g: 2, b: 3, alpha: 1 } } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();

/** A decoder that only finishes large images when told to, and records what it decoded. */
function controlledDecoder() {
  const decoded: number[] = [];
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const decode = async (bytes: Uint8Array): Promise<PreprocessedImage> => {
    if (bytes.length > 1000 && bytes.length !== smallLength) await released;
    decoded.push(bytes.length);
    return { patches: new Float32Array(0), numPatches: 0, patchDim: 0, sha256: '', sourceFormat: 'png', width: 0, height: 0 };
  };
  let smallLength = -1;
  return { decode, decoded, release, setSmall: (n: number) => (smallLength = n) };
}

test('an ordinary image is decoded while large ones occupy their lane', async () => {
  const [small, large] = [await smallPng(), await largePng()];
  const d = controlledDecoder();
  d.setSmall(small.length);
  const stage = new PreprocessStage(STAGE);
  assert.equal(stage.laneFor(large, OPTIONS), 'large');
  assert.equal(stage.laneFor(small, OPTIONS), 'standard');
  const largeOnes = [stage.run(large, OPTIONS, () => d.decode(large)), stage.run(large, OPTIONS, () => d.decode(large))];
  await stage.run(small, OPTIONS, () => d.decode(small));
  assert.deepEqual(d.decoded, [small.length], 'the small image did not wait for the large ones');
  assert.deepEqual(stage.depth().large, { queued: 1, running: 1 });
  d.release();
  await Promise.all(largeOnes);
});

test('a full lane refuses with 503 queue_full and Retry-After; the other lane still serves', async () => {
  const [small, large] = [await smallPng(), await largePng()];
  const d = controlledDecoder();
  d.setSmall(small.length);
  const rejected: string[] = [];
  const stage = new PreprocessStage(STAGE, (lane) => rejected.push(lane));
  const admitted = [stage.run(large, OPTIONS, () => d.decode(large)), stage.run(large, OPTIONS, () => d.decode(large))];
  await assert.rejects(
    stage.run(large, OPTIONS, () => d.decode(large)),
    (e: unknown) => e instanceof ApiError && e.status === 503 && e.code === 'queue_full' && Number(e.headers['Retry-After']) >= 1,
  );
  assert.deepEqual(rejected, ['large']);
  await stage.run(small, OPTIONS, () => d.decode(small));
  d.release();
  await Promise.all(admitted);
});

test('an image over the pixel limit skips the queue: the decoder refuses it from its header', async () => {
  const large = await largePng();
  const stage = new PreprocessStage({ ...STAGE, largeMaxQueue: 0, largeConcurrency: 1 });
  assert.equal(stage.laneFor(large, { ...OPTIONS, maxInputPixels: 1_000_000 }), 'none');
  const limits = { ...OPTIONS, maxInputPixels: 1_000_000 };
  await assert.rejects(
    stage.run(large, limits, () => preprocessImage(large, limits)),
    { code: 'image_too_large_pixels' },
  );
});
