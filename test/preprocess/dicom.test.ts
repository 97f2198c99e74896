import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import { decodeDicom, SUPPORTED_TRANSFER_SYNTAXES, type DicomRaster } from '../../src/preprocess/dicom.ts';
import { preprocessImage } from '../../src/preprocess/image.ts';
import { TS, writeDicomImage, type DicomImageSpec } from './dicom-writer.ts';
import { imageInputError } from './image-input-error-matcher.ts';

const LIMITS = { maxPixels: 1_000_000 };
const NATIVE_SYNTAXES = [
  ['explicit VR little endian', TS.explicitLittle],
  ['implicit VR little endian', TS.implicitLittle],
  ['explicit VR big endian', TS.explicitBig],
  ['deflated explicit VR little endian', TS.deflatedLittle],
] as const;

const decode = (spec: DicomImageSpec, limits = LIMITS): DicomRaster => decodeDicom(writeDicomImage(spec), limits);
const pixels = (raster: DicomRaster) => Array.from(raster.pixels);

for (const [name, transferSyntax] of NATIVE_SYNTAXES) {
  test(`${name}: 16-bit signed CT with Rescale Slope/Intercept and a window`, () => {
    // Stored [0, 1024, 1064, 2048] with intercept -1024 are HU [-1024, 0, 40, 1024]. Soft-tissue
    // window C=40 W=400 (LINEAR, PS3.3 C.11.2.1.2.1) spans (-160, 239]: -1024 -> 0,
    // 0 -> ((0 - 39.5) / 399 + 0.5) * 255 = 102.26, 40 -> 127.82, 1024 -> 255.
    const raster = decode({
      transferSyntax,
      rows: 2,
      columns: 2,
      bitsAllocated: 16,
      pixelRepresentation: 1,
      samples: [0, 1024, 1064, 2048],
      rescaleSlope: 1,
      rescaleIntercept: -1024,
      windowCenter: 40,
      windowWidth: 400,
    });
    assert.deepEqual(raster, { width: 2, height: 2, channels: 1, pixels: raster.pixels });
    assert.deepEqual(pixels(raster), [0, 102, 128, 255]);
  });

  test(`${name}: 16-bit signed negative values, no window: min-max of the rescaled values`, () => {
    // Slope 2 doubles the spread but min-max stretches it back: [-1000, 0, 1000, 3000] -> 0, 63.75, 127.5, 255.
    const raster = decode({
      transferSyntax,
      rows: 1,
      columns: 4,
      bitsAllocated: 16,
      pixelRepresentation: 1,
      samples: [-1000, 0, 1000, 3000],
      rescaleSlope: 2,
      rescaleIntercept: -1024,
    });
    assert.deepEqual(pixels(raster), [0, 64, 128, 255]);
  });

  test(`${name}: 8-bit unsigned, MONOCHROME2 and MONOCHROME1`, () => {
    const spec = { transferSyntax, rows: 1, columns: 3, bitsAllocated: 8, samples: [10, 40, 70] } as const;
    assert.deepEqual(pixels(decode(spec)), [0, 128, 255]);
    // MONOCHROME1: the minimum is white.
    assert.deepEqual(pixels(decode({ ...spec, photometric: 'MONOCHROME1' })), [255, 127, 0]);
  });

  test(`${name}: RGB, planar configuration 0 and 1 give the same interleaved pixels`, () => {
    const base = { transferSyntax, rows: 1, columns: 3, bitsAllocated: 8, photometric: 'RGB' } as const;
    const interleaved = decode({ ...base, planarConfiguration: 0, samples: [255, 0, 0, 0, 128, 255, 1, 2, 3] });
    const planar = decode({ ...base, planarConfiguration: 1, samples: [255, 0, 1, 0, 128, 2, 0, 255, 3] });
    assert.equal(interleaved.channels, 3);
    assert.deepEqual(pixels(interleaved), [255, 0, 0, 0, 128, 255, 1, 2, 3]);
    assert.deepEqual(pixels(planar), pixels(interleaved));
  });
}

test('explicit VR big endian: 8-bit samples in an OW element have their byte pairs swapped back', () => {
  const spec = { transferSyntax: TS.explicitBig, rows: 1, columns: 4, bitsAllocated: 8, samples: [0, 255, 85, 170], pixelVr: 'OW' } as const;
  assert.deepEqual(pixels(decode(spec)), [0, 255, 85, 170]);
  assert.deepEqual(pixels(decode({ ...spec, pixelVr: 'OB' })), [0, 255, 85, 170]);
});

test('16-bit unsigned, 12 bits stored: bits above HighBit are ignored', () => {
  // 0xF000 | v: garbage in the top nibble must not change the picture.
  const raster = decode({
    transferSyntax: TS.explicitLittle,
    rows: 1,
    columns: 3,
    bitsAllocated: 16,
    bitsStored: 12,
    highBit: 11,
    samples: [0xf000 | 0, 0xf000 | 2047, 0xf000 | 4094],
  });
  assert.deepEqual(pixels(raster), [0, 128, 255]);
});

test('16-bit RGB is scaled from its stored bit depth to 8 bits', () => {
  const raster = decode({ transferSyntax: TS.explicitLittle, rows: 1, columns: 1, bitsAllocated: 16, photometric: 'RGB', samples: [65535, 0, 32896] });
  assert.deepEqual(pixels(raster), [255, 0, 128]);
});

test('window: the first of several values is used; the LUT function is honoured', () => {
  const spec = {
    transferSyntax: TS.explicitLittle,
    rows: 1,
    columns: 3,
    bitsAllocated: 16,
    samples: [50, 150, 250],
    windowCenter: [140, 1000],
    windowWidth: [101, 5000],
  } as const;
  // LINEAR, C=140 W=101 spans (89.5, 189.5]: 150 -> ((150 - 139.5) / 100 + 0.5) * 255 = 154.3.
  // (The second window would give 79..89, min-max would give 128 in the middle.)
  assert.deepEqual(pixels(decode(spec)), [0, 154, 255]);
  // LINEAR_EXACT: ((150 - 140) / 101 + 0.5) * 255 = 152.7.
  assert.deepEqual(pixels(decode({ ...spec, voiLutFunction: 'LINEAR_EXACT' })), [0, 153, 255]);
  // SIGMOID: 255 / (1 + exp(-4 (x - 140) / 101)) = 7.02, 152.42, 251.77.
  assert.deepEqual(pixels(decode({ ...spec, voiLutFunction: 'SIGMOID' })), [7, 152, 252]);
});

test('a window of unusable width falls back to min-max', () => {
  const raster = decode({ transferSyntax: TS.explicitLittle, rows: 1, columns: 3, bitsAllocated: 8, samples: [0, 10, 20], windowCenter: 10, windowWidth: 0 });
  assert.deepEqual(pixels(raster), [0, 128, 255]);
});

test('MONOCHROME1 with a window: windowed first, then inverted', () => {
  const raster = decode({
    transferSyntax: TS.explicitLittle,
    rows: 1,
    columns: 2,
    bitsAllocated: 16,
    photometric: 'MONOCHROME1',
    samples: [0, 4095],
    windowCenter: 2048,
    windowWidth: 4096,
  });
  assert.deepEqual(pixels(raster), [255, 0]);
});

test('a file without preamble and "DICM" prefix still decodes', () => {
  const raster = decode({ transferSyntax: TS.implicitLittle, rows: 1, columns: 2, bitsAllocated: 8, samples: [0, 9], omitPreamble: true });
  assert.deepEqual(pixels(raster), [0, 255]);
});

test('multi-frame: the first frame is shown', () => {
  const raster = decode({ transferSyntax: TS.explicitLittle, rows: 1, columns: 2, bitsAllocated: 8, numberOfFrames: 2, samples: [0, 50, 200, 255] });
  assert.deepEqual(pixels(raster), [0, 255]);
});

test('compressed transfer syntaxes are 415 and the message names the supported ones', async () => {
  const jpegFrame = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#777' } })
    .greyscale()
    .jpeg()
    .toBuffer();
  for (const transferSyntax of [TS.jpegBaseline, TS.jpeg2000, TS.rle]) {
    const file = writeDicomImage({ transferSyntax, rows: 8, columns: 8, bitsAllocated: 8, encapsulatedFrames: [jpegFrame] });
    const mustName = [transferSyntax, ...Object.keys(SUPPORTED_TRANSFER_SYNTAXES), 'Explicit VR Big Endian'];
    assert.throws(() => decodeDicom(file, LIMITS), imageInputError('dicom_unsupported_transfer_syntax', mustName));
    const error = await preprocessImage(file, {
      imageSize: 16,
      patchSize: 8,
      channels: 3,
      mean: [0, 0, 0],
      std: [1, 1, 1],
      maxInputPixels: 1e6,
      maxBytes: 1e6,
    }).catch((e: unknown) => e);
    assert.ok(error instanceof Error && 'status' in error && error.status === 415, String(error));
  }
  assert.deepEqual(Object.keys(SUPPORTED_TRANSFER_SYNTAXES).sort(), NATIVE_SYNTAXES.map(([, uid]) => uid).sort());
});

test('truncated pixel data is 422, whether the file or the element is short', () => {
  const full = writeDicomImage({ transferSyntax: TS.explicitLittle, rows: 32, columns: 32, bitsAllocated: 16, samples: new Array(1024).fill(7) });
  decodeDicom(full, LIMITS);
  for (const cut of [full.length - 1, full.length - 100, full.length - 2000]) {
    assert.throws(() => decodeDicom(full.subarray(0, cut), LIMITS), imageInputError('image_unreadable'), `cut ${cut}`);
  }
  // A well-formed element that holds fewer bytes than Rows x Columns needs.
  const short = { transferSyntax: TS.explicitLittle, rows: 32, columns: 32, bitsAllocated: 16, samples: new Array(1000).fill(7) } as const;
  assert.throws(() => decode(short), imageInputError('image_unreadable', ['Pixel Data holds 2000 bytes', '2048']));
  for (const [, transferSyntax] of NATIVE_SYNTAXES) {
    assert.throws(() => decode({ ...short, transferSyntax }), imageInputError('image_unreadable'), transferSyntax);
  }
});

test('pixel bomb: Rows x Columns over the limit is 413 before any pixel is read', () => {
  const bomb = writeDicomImage({ transferSyntax: TS.explicitLittle, rows: 65535, columns: 65535, bitsAllocated: 16, samples: [1, 2, 3, 4] });
  assert.ok(bomb.length < 1_000);
  assert.throws(() => decodeDicom(bomb, LIMITS), imageInputError('image_too_large_pixels', ['65535x65535']));
  // Exactly at the limit passes the check (and then fails only because the data is missing).
  const atLimit = { transferSyntax: TS.explicitLittle, rows: 2, columns: 3, bitsAllocated: 8, samples: [1, 2, 3, 4, 5, 6] } as const;
  decode(atLimit, { maxPixels: 6 });
  assert.throws(() => decode(atLimit, { maxPixels: 5 }), imageInputError('image_too_large_pixels'));
});

test('deflate bomb: a dataset inflating past maxInflatedBytes is 413; a corrupt stream is 422', () => {
  const file = writeDicomImage({ transferSyntax: TS.deflatedLittle, rows: 100, columns: 100, bitsAllocated: 8, samples: new Array(10_000).fill(0) });
  assert.ok(file.length < 1_000); // 10 kB of zeros deflates to almost nothing
  decodeDicom(file, LIMITS);
  assert.throws(() => decodeDicom(file, { ...LIMITS, maxInflatedBytes: 5_000 }), imageInputError('image_too_large_bytes'));
  const corrupt = Buffer.from(file);
  corrupt.fill(0xff, corrupt.length - 40);
  assert.throws(() => decodeDicom(corrupt, LIMITS), imageInputError('image_unreadable'));
});

test('pixel formats we cannot show are 415 dicom_unsupported_pixel_format', () => {
  const base = { transferSyntax: TS.explicitLittle, rows: 1, columns: 2, bitsAllocated: 8, samples: [0, 1] } as const;
  assert.throws(() => decode({ ...base, photometric: 'PALETTE COLOR' }), imageInputError('dicom_unsupported_pixel_format', ['PALETTE COLOR', 'MONOCHROME2']));
  assert.throws(
    () => decode({ ...base, photometric: 'YBR_FULL', samplesPerPixel: 3, samples: [0, 1, 2, 3, 4, 5] }),
    imageInputError('dicom_unsupported_pixel_format'),
  );
  // BitsAllocated 32 (the writer's type allows 8 | 16 only; the header is all that is read).
  assert.throws(() => decode({ ...base, bitsAllocated: 32 as unknown as 8 }), imageInputError('dicom_unsupported_pixel_format', ['BitsAllocated 32']));
  assert.throws(
    () => decode({ ...base, photometric: 'RGB', pixelRepresentation: 1, samples: [0, 1, 2, 3, 4, 5] }),
    imageInputError('dicom_unsupported_pixel_format'),
  );
});

test('structurally broken files are 422', () => {
  const base = { transferSyntax: TS.explicitLittle, rows: 1, columns: 2, bitsAllocated: 8, samples: [0, 1] } as const;
  assert.throws(() => decode({ ...base, omitTags: [0x00280010] }), imageInputError('image_unreadable', ['Rows']));
  assert.throws(() => decode({ ...base, omitTags: [0x7fe00010] }), imageInputError('image_unreadable', ['Pixel Data']));
  assert.throws(() => decode({ ...base, rows: 0 }), imageInputError('image_unreadable'));
  assert.throws(() => decode({ ...base, bitsStored: 12 }), imageInputError('image_unreadable', ['BitsStored 12']));
  assert.throws(() => decode({ ...base, photometric: 'RGB', samplesPerPixel: 1 }), imageInputError('image_unreadable', ['SamplesPerPixel']));
  const headerOnly = writeDicomImage(base).subarray(0, 140);
  assert.throws(() => decodeDicom(headerOnly, LIMITS), imageInputError('image_unreadable'));
});

test('through preprocessImage: DICOM is sniffed, greyscale becomes equal RGB channels, limits apply', async () => {
  const opts = { imageSize: 4, patchSize: 2, channels: 3, mean: [0, 0, 0], std: [1, 1, 1], maxInputPixels: 1_000, maxBytes: 100_000 } as const;
  const file = writeDicomImage({
    transferSyntax: TS.explicitBig,
    rows: 4,
    columns: 4,
    bitsAllocated: 16,
    pixelRepresentation: 1,
    samples: Array.from({ length: 16 }, (_, i) => (i < 8 ? -500 : 1500)),
  });
  const result = await preprocessImage(file, opts);
  assert.equal(result.sourceFormat, 'dicom');
  assert.deepEqual([result.width, result.height, result.numPatches, result.patchDim], [4, 4, 4, 12]);
  // Top two rows black, bottom two white, in every channel: patches 0 and 1 are 0, 2 and 3 are 1.
  assert.deepEqual(Array.from(result.patches), [...new Array(24).fill(0), ...new Array(24).fill(1)]);

  const bomb = writeDicomImage({ transferSyntax: TS.implicitLittle, rows: 40_000, columns: 40_000, bitsAllocated: 8, samples: [1, 2] });
  await assert.rejects(preprocessImage(bomb, opts), imageInputError('image_too_large_pixels'));
  await assert.rejects(preprocessImage(file, { ...opts, maxBytes: file.length - 1 }), imageInputError('image_too_large_bytes'));
});
