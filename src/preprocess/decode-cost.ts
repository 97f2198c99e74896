// What decoding an upload will cost, read from its header in a few microseconds on the calling
// thread, before any decoder (or the thread pool it runs on) is involved. Decode time follows
// the bytes the decoder has to produce, not the upload's size: a 389 KB 16-bit RGBA PNG of
// 7071x7071 inflates to 400 MB of samples. The estimate lets the serving layer keep such images
// apart from ordinary ones; the decoder itself still enforces every limit.
import { sniffImageFormat, type ImageFormat } from './image-format.ts';

export interface DecodeCost {
  format: ImageFormat;
  /** 0 when the header does not say (DICOM: not parsed here). */
  width: number;
  height: number;
  /** Estimated bytes of samples the decoder produces on the way to the model's input size. */
  decodedBytes: number;
}

const PNG_IHDR_OFFSET = 16;
// Samples per pixel by PNG colour type (palette images are expanded to RGBA at worst).
const PNG_CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 4, 4: 2, 6: 4 };
// libjpeg decodes straight to 1/2, 1/4 or 1/8 scale when the target is that much smaller.
const JPEG_MAX_SHRINK = 8;

/**
 * The estimated cost of decoding `bytes` for a square model input of `targetSize` pixels, or
 * undefined when the header cannot be read (the decoder will refuse the upload, cheaply).
 */
export function estimateDecodeCost(bytes: Uint8Array, targetSize: number): DecodeCost | undefined {
  const format = sniffImageFormat(bytes);
  if (format === 'png') return pngCost(bytes);
  if (format === 'jpeg') return jpegCost(bytes, targetSize);
  // Native DICOM pixel data is stored uncompressed, so the file is about as large as its samples
  // (deflated datasets are bounded by the decoder's inflate limit).
  if (format === 'dicom') return { format, width: 0, height: 0, decodedBytes: bytes.length };
  return undefined;
}

function pngCost(bytes: Uint8Array): DecodeCost | undefined {
  if (bytes.length < PNG_IHDR_OFFSET + 13) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const width = view.getUint32(PNG_IHDR_OFFSET);
  const height = view.getUint32(PNG_IHDR_OFFSET + 4);
  const bitDepth = bytes[PNG_IHDR_OFFSET + 8]!;
  const channels = PNG_CHANNELS[bytes[PNG_IHDR_OFFSET + 9]!];
  if (channels === undefined) return undefined;
  const bytesPerSample = bitDepth > 8 ? 2 : 1;
  return { format: 'png', width, height, decodedBytes: width * height * channels * bytesPerSample };
}

function jpegCost(bytes: Uint8Array, targetSize: number): DecodeCost | undefined {
  const frame = jpegFrame(bytes);
  if (!frame) return undefined;
  const { width, height, components, precision } = frame;
  let shrink = 1;
  while (shrink < JPEG_MAX_SHRINK && Math.max(width, height) / (shrink * 2) >= targetSize) shrink *= 2;
  const bytesPerSample = precision > 8 ? 2 : 1;
  return { format: 'jpeg', width, height, decodedBytes: Math.ceil(width / shrink) * Math.ceil(height / shrink) * components * bytesPerSample };
}

/** The frame header (SOF0-SOF15 except DHT, JPG and DAC) found by walking the marker segments. */
function jpegFrame(bytes: Uint8Array): { width: number; height: number; components: number; precision: number } | undefined {
  let offset = 2;
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) return undefined;
    const marker = bytes[offset + 1]!;
    if (marker === 0xff) {
      offset++; // fill byte
      continue;
    }
    const length = (bytes[offset + 2]! << 8) | bytes[offset + 3]!;
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      if (offset + 10 > bytes.length) return undefined;
      return {
        precision: bytes[offset + 4]!,
        height: (bytes[offset + 5]! << 8) | bytes[offset + 6]!,
        width: (bytes[offset + 7]! << 8) | bytes[offset + 8]!,
        components: bytes[offset + 9]!,
      };
    }
    if (marker === 0xda || length < 2) return undefined; // scan data before a frame header
    offset += 2 + length;
  }
  return undefined;
}
