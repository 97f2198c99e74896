// Uploaded image bytes (PNG, JPEG or DICOM) -> the vision encoder's input patches.
// Every way client bytes can be bad ends as an ImageInputError (see errors.ts); limits on bytes
// and pixels are enforced before anything is decoded.

import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import sharp, { type Metadata, type OutputInfo, type Sharp } from 'sharp';
import { decodeDicom } from './dicom.ts';
import { describeThrown, ImageInputError } from './errors.ts';
import { sniffImageFormat, type ImageFormat } from './image-format.ts';
import { patchify, RGB_CHANNELS } from './patchify.ts';
import { pngHasCompleteChunks } from './png-chunks.ts';

export { patchify } from './patchify.ts';

export interface DecodeLimits {
  /** Width * height (of the one frame decoded, for DICOM) above this is rejected from the header alone. */
  maxInputPixels: number;
  /** Upload size above this is rejected before its format is even looked at. */
  maxBytes: number;
}

export interface PreprocessOptions extends DecodeLimits {
  /** Side of the square the image is resized to; a multiple of patchSize. */
  imageSize: number;
  patchSize: number;
  channels: 3;
  /** Per-channel normalisation applied to values in [0, 1], RGB order. */
  mean: readonly number[];
  std: readonly number[];
}

export interface DecodedImage {
  /** height * width * 3 bytes, sRGB, HWC (size * size for decodeImage). */
  rgb: Uint8Array;
  sourceFormat: ImageFormat;
  /** Source dimensions, after EXIF orientation. */
  width: number;
  height: number;
}

export interface PreprocessedImage {
  /** [numPatches, patchDim] row-major; see patchify for the order inside. */
  patches: Float32Array;
  numPatches: number;
  patchDim: number;
  /** Hex SHA-256 of the uploaded bytes, e.g. for caching and audit logs. */
  sha256: string;
  sourceFormat: ImageFormat;
  width: number;
  height: number;
}

// 'error' aborts on truncated and corrupt data but, unlike sharp's stricter default 'warning',
// accepts files whose decoder only warned (e.g. stray bytes between JPEG markers), which
// hospital systems do produce and which still decode to the full image.
const FAIL_ON = 'error';

const BLACK = { r: 0, g: 0, b: 0, alpha: 1 };

function tooManyPixels(width: number, height: number, limit: number): ImageInputError {
  return new ImageInputError('image_too_large_pixels', `Image of ${width}x${height} pixels exceeds the limit of ${limit} pixels.`);
}

function checkLimits(limits: DecodeLimits): void {
  for (const [name, value] of [
    ['maxInputPixels', limits.maxInputPixels],
    ['maxBytes', limits.maxBytes],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}.`);
  }
}

function requireBytes(bytes: Uint8Array | null | undefined): Uint8Array {
  if (bytes === null || bytes === undefined || bytes.length === 0) {
    throw new ImageInputError('image_missing', 'No image was uploaded, or the upload is empty.');
  }
  return bytes;
}

/**
 * Final stage shared by all formats: flatten alpha onto black, convert to 3-channel sRGB,
 * resize to size x size, 8 bits per sample.
 *
 * Resize uses fit 'contain' with black padding rather than 'fill': stretching would change
 * anatomical proportions (heart-to-chest ratio, lesion shape) that questions are asked about,
 * while padding only costs some blank patches, and most medical images (CT/MR slices,
 * radiographs) are close to square anyway. Black matches the background of radiographs and
 * cross-sectional images, so the padding reads as "outside the body".
 */
async function toSquareRgb(image: Sharp, size: number, maxInputPixels: number): Promise<Uint8Array> {
  let output: { data: Buffer; info: OutputInfo };
  try {
    output = await image
      .flatten({ background: BLACK })
      .toColourspace('srgb')
      .resize(size, size, { fit: 'contain', position: 'centre', background: BLACK })
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (thrown) {
    const message = describeThrown(thrown);
    // sharp's own limitInputPixels check; normally the header check in decodeEncoded fires first.
    if (message.includes('exceeds pixel limit')) {
      throw new ImageInputError('image_too_large_pixels', `Image exceeds the limit of ${maxInputPixels} pixels.`, { cause: thrown });
    }
    throw new ImageInputError('image_unreadable', 'The image data is corrupt or truncated.', { cause: thrown });
  }
  const { data, info } = output;
  if (info.width !== size || info.height !== size || info.channels !== RGB_CHANNELS || data.length !== size * size * RGB_CHANNELS) {
    throw new Error(`sharp produced ${info.width}x${info.height}x${info.channels} (${data.length} bytes), expected ${size}x${size}x3.`);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/**
 * A sharp instance over a PNG or JPEG upload whose header passed the checks, EXIF-oriented, plus its
 * oriented size. Shared by the square path (our own family) and the native-size path (HF processors).
 */
async function openEncoded(bytes: Buffer, format: 'png' | 'jpeg', limits: DecodeLimits): Promise<{ image: Sharp; width: number; height: number }> {
  // A PNG cut after its last IDAT would decode silently (see png-chunks.ts). JPEG needs no such
  // check: libjpeg reports a missing end of image, and failOn turns that into an error.
  if (format === 'png' && !pngHasCompleteChunks(bytes)) {
    throw new ImageInputError('image_unreadable', 'The PNG file is truncated: it ends before its IEND chunk.');
  }
  // Header first, without sharp's pixel limit: metadata() reads only the header, and with the limit
  // set it would throw a bare "exceeds pixel limit" that no longer says which dimensions were
  // refused. The limit is enforced right here instead, before a single pixel is decoded.
  let metadata: Metadata;
  try {
    metadata = await sharp(bytes, { limitInputPixels: false, failOn: FAIL_ON }).metadata();
  } catch (thrown) {
    throw new ImageInputError('image_unreadable', `The ${format.toUpperCase()} header is corrupt or truncated.`, { cause: thrown });
  }
  if (metadata.width * metadata.height > limits.maxInputPixels) {
    throw tooManyPixels(metadata.width, metadata.height, limits.maxInputPixels);
  }
  // The limit is repeated on the decoding instance as a second guard inside libvips.
  const image = sharp(bytes, { limitInputPixels: limits.maxInputPixels, failOn: FAIL_ON, autoOrient: true });
  return { image, width: metadata.autoOrient.width, height: metadata.autoOrient.height };
}

async function decodeEncoded(bytes: Buffer, format: 'png' | 'jpeg', size: number, limits: DecodeLimits): Promise<DecodedImage> {
  const { image, width, height } = await openEncoded(bytes, format, limits);
  const rgb = await toSquareRgb(image, size, limits.maxInputPixels);
  return { rgb, sourceFormat: format, width, height };
}

async function decodeDicomImage(bytes: Buffer, size: number, limits: DecodeLimits): Promise<DecodedImage> {
  const raster = decodeDicom(bytes, { maxPixels: limits.maxInputPixels });
  const image = sharp(raster.pixels, {
    raw: { width: raster.width, height: raster.height, channels: raster.channels },
    limitInputPixels: limits.maxInputPixels,
  });
  const rgb = await toSquareRgb(image, size, limits.maxInputPixels);
  return { rgb, sourceFormat: 'dicom', width: raster.width, height: raster.height };
}

/** Decodes PNG, JPEG or DICOM bytes to a size x size sRGB raster plus what it came from. */
export async function decodeImage(upload: Uint8Array | null | undefined, size: number, limits: DecodeLimits): Promise<DecodedImage> {
  checkLimits(limits);
  if (!Number.isSafeInteger(size) || size < 1) throw new RangeError(`size must be a positive integer, got ${size}.`);
  const bytes = requireBytes(upload);
  if (bytes.length > limits.maxBytes) {
    throw new ImageInputError('image_too_large_bytes', `Upload of ${bytes.length} bytes exceeds the limit of ${limits.maxBytes} bytes.`);
  }
  const format = sniffImageFormat(bytes);
  if (format === undefined) {
    throw new ImageInputError('unsupported_media_type', 'The upload is not a PNG, JPEG or DICOM (Part 10) image; only those formats are accepted.');
  }
  // A zero-copy Buffer view: sharp treats typed arrays other than Buffer as raw pixels.
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return format === 'dicom' ? decodeDicomImage(buffer, size, limits) : decodeEncoded(buffer, format, size, limits);
}

/**
 * The upload as 8-bit sRGB at its own size (EXIF-oriented), transparency composited onto
 * `background`; a DICOM image after its VOI window, grey copied to the three channels. Same checks
 * and errors as decodeImage. For processors that choose their own size (Hugging Face's).
 */
export async function decodeNativeRgb(upload: Uint8Array | null | undefined, limits: DecodeLimits, background: 'white' | 'black'): Promise<DecodedImage> {
  checkLimits(limits);
  const bytes = requireBytes(upload);
  if (bytes.length > limits.maxBytes) {
    throw new ImageInputError('image_too_large_bytes', `Upload of ${bytes.length} bytes exceeds the limit of ${limits.maxBytes} bytes.`);
  }
  const format = sniffImageFormat(bytes);
  if (format === undefined) {
    throw new ImageInputError('unsupported_media_type', 'The upload is not a PNG, JPEG or DICOM (Part 10) image; only those formats are accepted.');
  }
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let image: Sharp;
  let width: number;
  let height: number;
  if (format === 'dicom') {
    const raster = decodeDicom(buffer, { maxPixels: limits.maxInputPixels });
    image = sharp(raster.pixels, { raw: { width: raster.width, height: raster.height, channels: raster.channels }, limitInputPixels: limits.maxInputPixels });
    ({ width, height } = raster);
  } else {
    ({ image, width, height } = await openEncoded(buffer, format, limits));
  }
  const colour = background === 'white' ? { r: 255, g: 255, b: 255, alpha: 1 } : BLACK;
  let output: { data: Buffer; info: OutputInfo };
  try {
    output = await image.flatten({ background: colour }).toColourspace('srgb').removeAlpha().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (thrown) {
    if (describeThrown(thrown).includes('exceeds pixel limit')) {
      throw new ImageInputError('image_too_large_pixels', `Image exceeds the limit of ${limits.maxInputPixels} pixels.`, { cause: thrown });
    }
    throw new ImageInputError('image_unreadable', 'The image data is corrupt or truncated.', { cause: thrown });
  }
  const { data, info } = output;
  if (info.channels !== RGB_CHANNELS || info.width !== width || info.height !== height) {
    throw new Error(`sharp produced ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x3.`);
  }
  return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.length), sourceFormat: format, width, height };
}

/** size * size * 3 bytes (sRGB, HWC): the cacheable half of preprocessImage. */
export async function decodeToSquareRgb(bytes: Uint8Array | null | undefined, size: number, limits: DecodeLimits): Promise<Uint8Array> {
  return (await decodeImage(bytes, size, limits)).rgb;
}

/** Upload bytes -> normalised patches for the vision encoder. Same bytes give the same floats. */
export async function preprocessImage(upload: Uint8Array | null | undefined, opts: PreprocessOptions): Promise<PreprocessedImage> {
  if (opts.channels !== RGB_CHANNELS) throw new RangeError(`channels must be 3, got ${String(opts.channels)}.`);
  if (!Number.isSafeInteger(opts.patchSize) || opts.patchSize < 1 || opts.imageSize % opts.patchSize !== 0) {
    throw new RangeError(`patchSize ${opts.patchSize} must be a positive integer dividing imageSize ${opts.imageSize}.`);
  }
  const bytes = requireBytes(upload);
  const decoded = await decodeImage(bytes, opts.imageSize, opts);
  const patches = patchify(decoded.rgb, opts.imageSize, opts.patchSize, opts.mean, opts.std);
  const patchDim = opts.patchSize * opts.patchSize * RGB_CHANNELS;
  return {
    patches,
    numPatches: patches.length / patchDim,
    patchDim,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    sourceFormat: decoded.sourceFormat,
    width: decoded.width,
    height: decoded.height,
  };
}
