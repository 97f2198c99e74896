import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import sharp from 'sharp';
import { ImageInputError } from '../../src/preprocess/errors.ts';
import { decodeToSquareRgb, patchify, preprocessImage, type PreprocessOptions } from '../../src/preprocess/image.ts';
import { withJpegDimensions, withPngDimensions } from './header-patch.ts';
import { imageInputError } from './image-input-error-matcher.ts';

const MEAN = [0.485, 0.456, 0.406];
const STD = [0.229, 0.224, 0.225];
const OPTS: PreprocessOptions = {
  imageSize: 64,
  patchSize: 16,
  channels: 3,
  mean: MEAN,
  std: STD,
  maxInputPixels: 4_000_000,
  maxBytes: 1_000_000,
};
const LIMITS = { maxInputPixels: OPTS.maxInputPixels, maxBytes: OPTS.maxBytes };

const fixture = (name: string) => readFileSync(new URL(`../fixtures/vqa/images/${name}`, import.meta.url));
const REAL_512_JPEG = 'synpic21902.jpg'; // 512x512 CT from VQA-RAD
const REAL_NON_SQUARE_JPEG = 'synpic22286.jpg'; // 732x516

const normalised = (v: number, c: number) => Math.fround((v / 255 - MEAN[c]!) / STD[c]!);

/** A lossless image whose samples name their position: R = 4x, G = 4y, B = 2(x + y). */
function coordinateRgb(width: number, height: number): Buffer {
  const raw = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) raw.set([4 * x, 4 * y, 2 * (x + y)], (y * width + x) * 3);
  }
  return raw;
}
const rawImage = (data: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4) => sharp(data, { raw: { width, height, channels } });

/** Sample c of the pixel at (x, y) of the size x size square, read back out of the patch sequence. */
function sampleAt(patches: Float32Array, opts: PreprocessOptions, x: number, y: number, c: number): number {
  const p = opts.patchSize;
  const grid = opts.imageSize / p;
  const patchIndex = Math.floor(y / p) * grid + Math.floor(x / p);
  return patches[patchIndex * p * p * 3 + ((y % p) * p + (x % p)) * 3 + c]!;
}

test('real JPEG fixture: shape, metadata, sha256 of the upload, deterministic', async () => {
  const bytes = fixture(REAL_NON_SQUARE_JPEG);
  const result = await preprocessImage(bytes, OPTS);
  assert.equal(result.numPatches, 16);
  assert.equal(result.patchDim, 16 * 16 * 3);
  assert.equal(result.patches.length, 16 * 768);
  assert.equal(result.sourceFormat, 'jpeg');
  assert.deepEqual([result.width, result.height], [732, 516]);
  assert.equal(result.sha256, createHash('sha256').update(bytes).digest('hex'));
  assert.ok(result.patches.every(Number.isFinite));
  const again = await preprocessImage(bytes, OPTS);
  assert.deepEqual(again.patches, result.patches);
  // The image is not blank: a real picture has contrast.
  const first = result.patches[0]!;
  assert.ok(result.patches.some((v) => Math.abs(v - first) > 1));
});

test('patch order and normalisation: every value matches the pixel it came from', async () => {
  const png = await rawImage(coordinateRgb(64, 64), 64, 64, 3).png().toBuffer();
  const result = await preprocessImage(png, OPTS);
  assert.equal(result.sourceFormat, 'png');
  assert.equal(result.numPatches, 16);
  let checked = 0;
  for (let y = 0; y < 64; y++) {
    for (let x = 0; x < 64; x++) {
      const expected = [4 * x, 4 * y, 2 * (x + y)];
      for (let c = 0; c < 3; c++) {
        assert.equal(sampleAt(result.patches, OPTS, x, y, c), normalised(expected[c]!, c), `(${x},${y}) channel ${c}`);
        checked++;
      }
    }
  }
  assert.equal(checked, result.patches.length);
  // Spot check the layout without the helper: patch 5 is grid row 1, column 1, so its first
  // pixel is (16, 16) and its 18th pixel (index 17) is row 1, column 1 of the patch: (17, 17).
  assert.equal(result.patches[5 * 768 + 17 * 3], normalised(4 * 17, 0));
  assert.equal(result.patches[5 * 768 + 17 * 3 + 1], normalised(4 * 17, 1));
});

test('decodeToSquareRgb is the cacheable half: patchify of it equals preprocessImage', async () => {
  const bytes = fixture(REAL_512_JPEG);
  const rgb = await decodeToSquareRgb(bytes, 64, LIMITS);
  assert.equal(rgb.length, 64 * 64 * 3);
  const { patches } = await preprocessImage(bytes, OPTS);
  assert.deepEqual(patchify(rgb, 64, 16, MEAN, STD), patches);
});

test('JPEG made with sharp: colours survive within JPEG error', async () => {
  // Quadrants red, green, blue, white at 128x128; resized to 64 each quadrant is 32x32.
  const raw = Buffer.alloc(128 * 128 * 3);
  const colours = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 255, 255],
  ];
  for (let y = 0; y < 128; y++) {
    for (let x = 0; x < 128; x++) raw.set(colours[(y < 64 ? 0 : 2) + (x < 64 ? 0 : 1)]!, (y * 128 + x) * 3);
  }
  const jpeg = await rawImage(raw, 128, 128, 3).jpeg({ quality: 95 }).toBuffer();
  const result = await preprocessImage(jpeg, OPTS);
  assert.equal(result.sourceFormat, 'jpeg');
  for (const [qx, qy, colour] of [
    [16, 16, 0],
    [48, 16, 1],
    [16, 48, 2],
    [48, 48, 3],
  ] as const) {
    for (let c = 0; c < 3; c++) {
      const got = sampleAt(result.patches, OPTS, qx, qy, c) * STD[c]! + MEAN[c]!;
      assert.ok(Math.abs(got * 255 - colours[colour]![c]!) <= 6, `quadrant ${colour} channel ${c}: ${got * 255}`);
    }
  }
});

test('non-square images keep their proportions: letterboxed with black, centred', async () => {
  // 64x32, flat grey 200: becomes rows 16..47 grey, 16 black rows above and below.
  const png = await sharp({ create: { width: 64, height: 32, channels: 3, background: { r: 200, g: 200, b: 200 } } })
    .png()
    .toBuffer();
  const rgb = await decodeToSquareRgb(png, 64, LIMITS);
  const at = (x: number, y: number) => rgb[(y * 64 + x) * 3]!;
  for (const x of [0, 31, 63]) {
    for (const y of [0, 15]) assert.equal(at(x, y), 0, `top padding at (${x},${y})`);
    for (const y of [16, 31, 47]) assert.equal(at(x, y), 200, `image at (${x},${y})`);
    for (const y of [48, 63]) assert.equal(at(x, y), 0, `bottom padding at (${x},${y})`);
  }
});

test('grayscale, grayscale+alpha, RGBA and 16-bit inputs all become 8-bit RGB', async () => {
  const grey = await rawImage(Buffer.alloc(16, 100), 4, 4, 1).toColourspace('b-w').png().toBuffer();
  assert.equal((await sharp(grey).metadata()).channels, 1);
  assert.deepEqual(Array.from(await decodeToSquareRgb(grey, 4, LIMITS)), new Array(48).fill(100));

  // Alpha is flattened onto black: 50% transparent becomes half as bright.
  const greyAlpha = await rawImage(Buffer.from(new Array(16).fill([200, 128]).flat()), 4, 4, 2)
    .toColourspace('b-w')
    .png()
    .toBuffer();
  assert.deepEqual(
    await sharp(greyAlpha)
      .metadata()
      .then((m) => [m.channels, m.space]),
    [2, 'b-w'],
  );
  for (const v of await decodeToSquareRgb(greyAlpha, 4, LIMITS)) assert.ok(Math.abs(v - 100) <= 1, `grey+alpha sample ${v}`);
  const rgba = await rawImage(Buffer.from(new Array(16).fill([200, 100, 50, 128]).flat()), 4, 4, 4)
    .png()
    .toBuffer();
  assert.equal((await sharp(rgba).metadata()).channels, 4);
  const flattened = await decodeToSquareRgb(rgba, 4, LIMITS);
  for (let i = 0; i < 16; i++) {
    const px = Array.from(flattened.subarray(3 * i, 3 * i + 3));
    [100, 50, 25].forEach((v, c) => assert.ok(Math.abs(px[c]! - v) <= 1, `pixel ${i}: ${px}`));
  }

  // 16-bit grey (common for exported radiographs) is scaled, not clipped: 65535 -> 255, 4369 -> 17.
  const grey16 = await sharp(
    Uint16Array.from({ length: 16 }, (_, i) => i * 4369),
    { raw: { width: 4, height: 4, channels: 1 } },
  )
    .toColourspace('grey16')
    .png()
    .toBuffer();
  assert.equal((await sharp(grey16).metadata()).depth, 'ushort');
  const rgb16 = await decodeToSquareRgb(grey16, 4, LIMITS);
  assert.deepEqual(
    Array.from(rgb16),
    Array.from({ length: 48 }, (_, i) => Math.floor(i / 3) * 17),
  );
});

test('EXIF orientation is applied before resizing', async () => {
  // Stored 40x20, left half red, right half blue. Orientation 6 means "rotate 90° clockwise to
  // display", so the displayed image is 20x40 with red on top and blue below.
  const raw = Buffer.alloc(40 * 20 * 3);
  for (let y = 0; y < 20; y++) for (let x = 0; x < 40; x++) raw.set(x < 20 ? [255, 0, 0] : [0, 0, 255], (y * 40 + x) * 3);
  const jpeg = await rawImage(raw, 40, 20, 3).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  assert.equal((await sharp(jpeg).metadata()).orientation, 6);

  const result = await preprocessImage(jpeg, OPTS);
  assert.deepEqual([result.width, result.height], [20, 40]);
  const rgb = await decodeToSquareRgb(jpeg, 64, LIMITS);
  const px = (x: number, y: number) => Array.from(rgb.subarray((y * 64 + x) * 3, (y * 64 + x) * 3 + 3));
  const near = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]!) <= 20);
  assert.ok(near(px(32, 8), [255, 0, 0]), `top centre should be red: ${px(32, 8)}`);
  assert.ok(near(px(32, 56), [0, 0, 255]), `bottom centre should be blue: ${px(32, 56)}`);
  // Displayed 20x40 scaled to 32x64 sits in columns 16..47: the sides are padding.
  assert.deepEqual(px(4, 32), [0, 0, 0]);
  assert.deepEqual(px(60, 32), [0, 0, 0]);
});

test('no image: null, undefined and empty bytes are 400 image_missing', async () => {
  for (const bytes of [null, undefined, new Uint8Array(0)]) {
    await assert.rejects(preprocessImage(bytes, OPTS), imageInputError('image_missing'));
  }
  const error = await preprocessImage(Buffer.alloc(0), OPTS).catch((e: unknown) => e);
  assert.ok(error instanceof ImageInputError);
  assert.equal(error.status, 400);
});

test('not an image, or a format we do not decode, is 415 unsupported_media_type', async () => {
  const tiny = () => sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } });
  const inputs = [
    Buffer.from('What is the abnormality in this chest X-ray?\n'),
    Buffer.from('{"image": "not really"}'),
    await tiny().webp().toBuffer(),
    await tiny().gif().toBuffer(),
  ];
  for (const bytes of inputs) {
    const error = await preprocessImage(bytes, OPTS).catch((e: unknown) => e);
    assert.ok(error instanceof ImageInputError, String(error));
    assert.equal(error.code, 'unsupported_media_type');
    assert.equal(error.status, 415);
  }
});

test('truncated PNG fails at every cut point, including one that loses only IEND', async () => {
  const png = await rawImage(coordinateRgb(48, 40), 48, 40, 3).png().toBuffer();
  await preprocessImage(png, OPTS); // the whole file is fine
  const iend = png.length - 12;
  const cuts = [33, 60, Math.floor(png.length / 2), iend - 5, iend - 1, iend, png.length - 1];
  for (let cut = 40; cut < png.length; cut += Math.ceil(png.length / 40)) cuts.push(cut);
  for (const cut of cuts) {
    await assert.rejects(preprocessImage(png.subarray(0, cut), OPTS), imageInputError('image_unreadable'), `cut at ${cut}/${png.length}`);
  }
  // Bytes after IEND are tolerated (some writers append data there).
  await preprocessImage(Buffer.concat([png, Buffer.from('trailer')]), OPTS);
});

test('truncated JPEG fails at every cut point, including one that loses only the EOI marker', async () => {
  for (const progressive of [false, true]) {
    const jpeg = await rawImage(coordinateRgb(48, 40), 48, 40, 3).jpeg({ progressive }).toBuffer();
    await preprocessImage(jpeg, OPTS);
    const cuts = [3, 20, Math.floor(jpeg.length / 2), jpeg.length - 2, jpeg.length - 1];
    for (let cut = 4; cut < jpeg.length; cut += Math.ceil(jpeg.length / 40)) cuts.push(cut);
    for (const cut of cuts) {
      await assert.rejects(
        preprocessImage(jpeg.subarray(0, cut), OPTS),
        imageInputError('image_unreadable'),
        `progressive=${progressive} cut at ${cut}/${jpeg.length}`,
      );
    }
  }
});

test('a real fixture truncated by 10% is refused, not half decoded', async () => {
  const jpeg = fixture(REAL_512_JPEG);
  await assert.rejects(preprocessImage(jpeg.subarray(0, Math.floor(jpeg.length * 0.9)), OPTS), imageInputError('image_unreadable'));
  const png = await sharp(jpeg).png().toBuffer();
  await assert.rejects(preprocessImage(png.subarray(0, Math.floor(png.length * 0.9)), OPTS), imageInputError('image_unreadable'));
});

test('a PNG signature followed by garbage is 422', async () => {
  const garbage = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(200, 0x41)]);
  await assert.rejects(preprocessImage(garbage, OPTS), imageInputError('image_unreadable'));
  await assert.rejects(preprocessImage(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(200, 0x41)]), OPTS), imageInputError('image_unreadable'));
});

test('pixel bomb: a small file declaring 30000x30000 is 413, refused from the header', async () => {
  const small = await rawImage(coordinateRgb(16, 16), 16, 16, 3).png().toBuffer();
  const pngBomb = withPngDimensions(small, 30_000, 30_000);
  assert.ok(pngBomb.length < 2_000);
  // The image data is for 16x16: had it been decoded, the failure would be 422, not 413.
  const started = performance.now();
  await assert.rejects(preprocessImage(pngBomb, OPTS), imageInputError('image_too_large_pixels', ['30000x30000']));
  assert.ok(performance.now() - started < 2_000);
  const error = await preprocessImage(pngBomb, OPTS).catch((e: unknown) => e);
  assert.ok(error instanceof ImageInputError && error.status === 413);

  const jpegBomb = withJpegDimensions(await rawImage(coordinateRgb(16, 16), 16, 16, 3).jpeg().toBuffer(), 30_000, 30_000);
  await assert.rejects(preprocessImage(jpegBomb, OPTS), imageInputError('image_too_large_pixels', ['30000x30000']));
});

test('maxInputPixels is inclusive: exactly the limit passes, one pixel more is 413', async () => {
  const png = (w: number, h: number) =>
    sharp({ create: { width: w, height: h, channels: 3, background: '#404040' } })
      .png()
      .toBuffer();
  const limits = { ...OPTS, maxInputPixels: 100 * 50 };
  await preprocessImage(await png(100, 50), limits);
  await assert.rejects(preprocessImage(await png(101, 50), limits), imageInputError('image_too_large_pixels', ['101x50']));
});

test('over maxBytes is 413 image_too_large_bytes, checked before the content is looked at', async () => {
  const jpeg = fixture(REAL_512_JPEG);
  await preprocessImage(jpeg, { ...OPTS, maxBytes: jpeg.length });
  await assert.rejects(preprocessImage(jpeg, { ...OPTS, maxBytes: jpeg.length - 1 }), imageInputError('image_too_large_bytes', [String(jpeg.length)]));
  // Even bytes that are not an image get 413, not 415: the size is judged first.
  await assert.rejects(preprocessImage(Buffer.alloc(2_000, 0x20), { ...OPTS, maxBytes: 1_000 }), imageInputError('image_too_large_bytes'));
});

test('programmer errors in options are RangeErrors, not client errors', async () => {
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#000' } })
    .png()
    .toBuffer();
  await assert.rejects(preprocessImage(png, { ...OPTS, patchSize: 15 }), RangeError);
  await assert.rejects(preprocessImage(png, { ...OPTS, channels: 1 as unknown as 3 }), RangeError);
  await assert.rejects(preprocessImage(png, { ...OPTS, maxBytes: 0 }), RangeError);
  await assert.rejects(decodeToSquareRgb(png, 0, LIMITS), RangeError);
});

test('speed: a real 512x512 JPEG to 128x128 in 16x16 patches', async (t) => {
  const jpeg = fixture(REAL_512_JPEG);
  const opts: PreprocessOptions = { ...OPTS, imageSize: 128, patchSize: 16 };
  await preprocessImage(jpeg, opts); // warm-up: first call loads codecs
  const runs = 20;
  const started = performance.now();
  for (let i = 0; i < runs; i++) {
    const result = await preprocessImage(jpeg, opts);
    assert.equal(result.numPatches, 64);
  }
  const msPerImage = (performance.now() - started) / runs;
  t.diagnostic(`preprocessImage 512x512 JPEG -> 64 patches of 16x16x3: ${msPerImage.toFixed(2)} ms/image (mean of ${runs})`);
});
