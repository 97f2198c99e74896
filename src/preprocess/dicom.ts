// DICOM Part 10 bytes -> one 8-bit grayscale or RGB raster (the first frame), as a viewer would
// display it. Only native (uncompressed) pixel data is decoded: compressed transfer syntaxes
// would each need a codec (JPEG lossless, JPEG 2000, JPEG-LS, RLE), which we do not ship, and
// rejecting them with a clear 415 lets the client re-export uncompressed or as PNG.

import { Buffer } from 'node:buffer';
import { inflateRawSync } from 'node:zlib';
// dicom-parser is a CommonJS/UMD bundle: Node exposes it only as a default export.
import dicomParser from 'dicom-parser';
import type { DataSet, Element } from 'dicom-parser';
import { readStoredSamples } from './dicom-samples.ts';
import { grayscaleTo8Bit, parseVoiLutFunction, type VoiWindow } from './dicom-voi.ts';
import { describeThrown, ImageInputError } from './errors.ts';
import { DICOM_PREAMBLE_LENGTH, hasDicomPreamble, isDicomMetaHeaderWithoutPreamble } from './image-format.ts';

const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
const DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1.99';
const EXPLICIT_VR_BIG_ENDIAN = '1.2.840.10008.1.2.2';

export const SUPPORTED_TRANSFER_SYNTAXES: Readonly<Record<string, string>> = {
  [IMPLICIT_VR_LITTLE_ENDIAN]: 'Implicit VR Little Endian',
  [EXPLICIT_VR_LITTLE_ENDIAN]: 'Explicit VR Little Endian',
  [DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN]: 'Deflated Explicit VR Little Endian',
  [EXPLICIT_VR_BIG_ENDIAN]: 'Explicit VR Big Endian',
};

const SUPPORTED_PHOTOMETRIC = ['MONOCHROME1', 'MONOCHROME2', 'RGB'];

// Beyond the pixel data, a dataset holds tags (private vendor headers can run to megabytes).
const INFLATED_NON_PIXEL_ALLOWANCE = 8 * 1024 * 1024;
// The largest legitimate pixel data per pixel: 3 samples of 16 bits.
const MAX_BYTES_PER_PIXEL = 6;

export interface DicomLimits {
  /**
   * Rows * Columns above this is rejected before any pixel is read. Per frame, because only the
   * first frame is decoded; the other frames cost no more memory than the upload's own bytes.
   */
  maxPixels: number;
  /**
   * Ceiling on a deflated dataset once inflated, so a tiny deflate bomb cannot exhaust memory.
   * Default: what maxPixels of 16-bit RGB plus generous non-pixel tags can need.
   */
  maxInflatedBytes?: number;
}

export interface DicomRaster {
  width: number;
  height: number;
  channels: 1 | 3;
  /** 8-bit samples, rows top to bottom, channels interleaved (HWC). */
  pixels: Uint8Array;
}

function unreadable(message: string, cause?: unknown): ImageInputError {
  return new ImageInputError('image_unreadable', `Malformed DICOM file: ${message}`, cause === undefined ? undefined : { cause });
}

function unsupportedPixelFormat(detail: string): ImageInputError {
  return new ImageInputError(
    'dicom_unsupported_pixel_format',
    `Unsupported DICOM pixel format (${detail}). Supported: PhotometricInterpretation ` + `${SUPPORTED_PHOTOMETRIC.join(', ')} with BitsAllocated 8 or 16.`,
  );
}

/** Gives a preamble-less file the preamble and prefix dicom-parser insists on. */
function asPart10Buffer(bytes: Uint8Array): Buffer {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (hasDicomPreamble(view)) return view;
  if (isDicomMetaHeaderWithoutPreamble(view)) {
    return Buffer.concat([Buffer.alloc(DICOM_PREAMBLE_LENGTH), Buffer.from('DICM', 'latin1'), view]);
  }
  throw unreadable('no "DICM" prefix at offset 128 and no file meta header at offset 0.');
}

function readTransferSyntax(part10: Buffer): string {
  let meta: DataSet;
  try {
    meta = dicomParser.readPart10Header(part10);
  } catch (thrown) {
    throw unreadable(`unreadable file meta header (${describeThrown(thrown)}).`, thrown);
  }
  const uid = meta.string('x00020010');
  if (uid === undefined || uid === '') throw unreadable('the file meta header has no Transfer Syntax UID (0002,0010).');
  return uid;
}

function assertSupportedTransferSyntax(uid: string): void {
  if (uid in SUPPORTED_TRANSFER_SYNTAXES) return;
  const supported = Object.entries(SUPPORTED_TRANSFER_SYNTAXES)
    .map(([u, name]) => `${name} (${u})`)
    .join(', ');
  throw new ImageInputError(
    'dicom_unsupported_transfer_syntax',
    `DICOM transfer syntax ${uid} is not supported; compressed pixel data cannot be decoded. ` +
      `Supported transfer syntaxes: ${supported}. Re-export the image uncompressed, or as PNG.`,
  );
}

function parseDataset(part10: Buffer, maxInflatedBytes: number): DataSet {
  try {
    return dicomParser.parseDicom(part10, {
      // Replaces dicom-parser's own zlib call so the output size is capped. dicom-parser uses the
      // returned bytes (meta header followed by the inflated dataset) although its typings say void.
      inflater: (whole: Uint8Array, datasetStart: number) => {
        let inflated: Buffer;
        try {
          inflated = inflateRawSync(whole.subarray(datasetStart), { maxOutputLength: maxInflatedBytes });
        } catch (thrown) {
          if ((thrown as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
            throw new ImageInputError('image_too_large_bytes', `The deflated DICOM dataset inflates to more than ${maxInflatedBytes} bytes.`);
          }
          throw unreadable(`the deflated dataset cannot be inflated (${describeThrown(thrown)}).`, thrown);
        }
        return Buffer.concat([whole.subarray(0, datasetStart), inflated]);
      },
    });
  } catch (thrown) {
    if (thrown instanceof ImageInputError) throw thrown;
    throw unreadable(`the dataset cannot be parsed (${describeThrown(thrown)}).`, thrown);
  }
}

function requiredUint16(ds: DataSet, tag: string, name: string): number {
  const value = ds.uint16(tag);
  if (value === undefined) throw unreadable(`missing ${name} (${tag.slice(1, 5)},${tag.slice(5)}).`);
  return value;
}

function finiteOr(value: number | undefined, fallback: number): number {
  return value !== undefined && Number.isFinite(value) ? value : fallback;
}

/** First value of Window Center/Width (both may be multi-valued), if both are present. */
function readWindow(ds: DataSet): VoiWindow | undefined {
  const center = ds.floatString('x00281050', 0);
  const width = ds.floatString('x00281051', 0);
  if (center === undefined || width === undefined) return undefined;
  return { center, width, lutFunction: parseVoiLutFunction(ds.string('x00281056')) };
}

/** The first frame's pixel data bytes must be wholly inside the element and the file. */
function firstFrameOffset(ds: DataSet, frameBytes: number): { element: Element; offset: number } {
  const element = ds.elements.x7fe00010;
  if (element === undefined) {
    if (ds.elements.x7fe00008 !== undefined || ds.elements.x7fe00009 !== undefined) {
      throw unsupportedPixelFormat('floating-point pixel data');
    }
    throw unreadable('no Pixel Data (7FE0,0010); the file holds no image.');
  }
  if (element.encapsulatedPixelData || element.hadUndefinedLength) {
    throw unreadable('Pixel Data is encapsulated although the transfer syntax is uncompressed.');
  }
  if (element.length < frameBytes || element.dataOffset + frameBytes > ds.byteArray.length) {
    throw unreadable(`Pixel Data holds ${element.length} bytes, the first frame needs ${frameBytes}.`);
  }
  return { element, offset: element.dataOffset };
}

/** 8-bit value for a colour sample of bitsStored bits (RGB has no VOI window in DICOM). */
function colourSamplesTo8Bit(stored: Int32Array, bitsStored: number): Uint8Array {
  if (bitsStored === 8) return Uint8Array.from(stored);
  const scale = 255 / (2 ** bitsStored - 1);
  return Uint8Array.from(stored, (v) => Math.round(v * scale));
}

function planarToInterleaved(planar: Uint8Array, pixelCount: number): Uint8Array {
  const out = new Uint8Array(planar.length);
  for (let i = 0; i < pixelCount; i++) {
    out[3 * i] = planar[i]!;
    out[3 * i + 1] = planar[pixelCount + i]!;
    out[3 * i + 2] = planar[2 * pixelCount + i]!;
  }
  return out;
}

/** Decodes the first frame of a DICOM file; throws ImageInputError for anything it cannot show. */
export function decodeDicom(bytes: Uint8Array, limits: DicomLimits): DicomRaster {
  const part10 = asPart10Buffer(bytes);
  const transferSyntax = readTransferSyntax(part10);
  assertSupportedTransferSyntax(transferSyntax);
  const maxInflatedBytes = limits.maxInflatedBytes ?? limits.maxPixels * MAX_BYTES_PER_PIXEL + INFLATED_NON_PIXEL_ALLOWANCE;
  const ds = parseDataset(part10, maxInflatedBytes);

  const rows = requiredUint16(ds, 'x00280010', 'Rows');
  const columns = requiredUint16(ds, 'x00280011', 'Columns');
  if (rows === 0 || columns === 0) throw unreadable(`image of ${columns}x${rows} pixels.`);
  const frames = finiteOr(ds.intString('x00280008'), 1);
  if (frames < 1) throw unreadable(`NumberOfFrames is ${frames}.`);
  if (rows * columns > limits.maxPixels) {
    throw new ImageInputError('image_too_large_pixels', `DICOM image of ${columns}x${rows} pixels exceeds the limit of ${limits.maxPixels} pixels.`);
  }

  const samplesPerPixel = ds.uint16('x00280002') ?? 1;
  // Type 1 attribute, but old single-sample files omit it; MONOCHROME2 is what they mean.
  const photometric = (ds.string('x00280004') ?? (samplesPerPixel === 1 ? 'MONOCHROME2' : '')).toUpperCase();
  if (!SUPPORTED_PHOTOMETRIC.includes(photometric)) {
    throw unsupportedPixelFormat(`PhotometricInterpretation ${photometric || '(missing)'}`);
  }
  const expectedSamples = photometric === 'RGB' ? 3 : 1;
  if (samplesPerPixel !== expectedSamples) {
    throw unreadable(`SamplesPerPixel ${samplesPerPixel} contradicts PhotometricInterpretation ${photometric}.`);
  }

  const bitsAllocated = requiredUint16(ds, 'x00280100', 'BitsAllocated');
  if (bitsAllocated !== 8 && bitsAllocated !== 16) throw unsupportedPixelFormat(`BitsAllocated ${bitsAllocated}`);
  const bitsStored = ds.uint16('x00280101') ?? bitsAllocated;
  const highBit = ds.uint16('x00280102') ?? bitsStored - 1;
  if (bitsStored < 1 || bitsStored > bitsAllocated || highBit < bitsStored - 1 || highBit >= bitsAllocated) {
    throw unreadable(`BitsStored ${bitsStored} / HighBit ${highBit} do not fit BitsAllocated ${bitsAllocated}.`);
  }
  const signed = (ds.uint16('x00280103') ?? 0) === 1;
  if (signed && photometric === 'RGB') throw unsupportedPixelFormat('signed RGB samples');

  const pixelCount = rows * columns;
  const sampleCount = pixelCount * samplesPerPixel;
  const { element, offset } = firstFrameOffset(ds, (sampleCount * bitsAllocated) / 8);
  const bigEndian = transferSyntax === EXPLICIT_VR_BIG_ENDIAN;
  const stored = readStoredSamples(ds.byteArray, offset, sampleCount, {
    bitsAllocated,
    bitsStored,
    highBit,
    signed,
    bigEndian,
    swapBytePairs: bigEndian && bitsAllocated === 8 && element.vr === 'OW',
  });

  if (photometric === 'RGB') {
    const samples = colourSamplesTo8Bit(stored, bitsStored);
    const planarConfiguration = ds.uint16('x00280006') ?? 0;
    const pixels = planarConfiguration === 1 ? planarToInterleaved(samples, pixelCount) : samples;
    return { width: columns, height: rows, channels: 3, pixels };
  }

  const pixels = grayscaleTo8Bit(stored, {
    rescaleSlope: finiteOr(ds.floatString('x00281053'), 1),
    rescaleIntercept: finiteOr(ds.floatString('x00281052'), 0),
    window: readWindow(ds),
    invert: photometric === 'MONOCHROME1',
  });
  return { width: columns, height: rows, channels: 1, pixels };
}
