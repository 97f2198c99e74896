// Qwen2VLImageProcessor (transformers' slow, PIL processor) in TypeScript: smart_resize, bicubic
// resize, rescale, CLIP normalisation, two temporal frames, merge-grouped patches, image_grid_thw.
// Every step follows ../shared/reference/README.md ("Image processor"); the arithmetic is done in
// the same precision and order as numpy does it there, so that fed Pillow's resized pixels the
// output equals the golden pixel_values.
//
// The one step that is not bit-exact is the resize: sharp (libvips) stands in for Pillow. Pillow
// resamples horizontally, rounds to uint8, then vertically; doing the same with sharp's cubic
// (Catmull-Rom, Pillow's BICUBIC kernel) in two passes lands closest to Pillow of the variants sharp
// offers (measured on golden/image.png: max 5 grey levels, mean 0.095; one pass: max 6, mean 0.216;
// lanczos2: max 5, mean 0.14 in two passes; linear: max 17). See test/engine/architectures/qwen2-vl.
import sharp from 'sharp';

export interface Qwen2VlImageConfig {
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  minPixels: number;
  maxPixels: number;
  /** Per-channel, RGB, applied to values in [0, 1]. */
  mean: [number, number, number];
  std: [number, number, number];
  rescaleFactor: number;
  doResize: boolean;
  doRescale: boolean;
  doNormalize: boolean;
}

export interface ProcessedImage {
  /** [numPatches, 3 * temporalPatchSize * patchSize²], merge-grouped order. */
  pixelValues: Float32Array;
  numPatches: number;
  patchDim: number;
  /** [t, h, w] in patches. */
  gridThw: [number, number, number];
  /** How many image-pad tokens stand for this image in the prompt. */
  numImageTokens: number;
  resizedHeight: number;
  resizedWidth: number;
}

export class ImageConfigError extends Error {
  override name = 'ImageConfigError';
}

const OPENAI_CLIP_MEAN: [number, number, number] = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_CLIP_STD: [number, number, number] = [0.26862954, 0.26130258, 0.27577711];

/** Python's round() on a double: halves go to the even neighbour (2.5 → 2, 3.5 → 4). */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor; // exact for the magnitudes of image sides
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/**
 * transformers' smart_resize: both sides multiples of `factor`, the area within [minPixels,
 * maxPixels], the aspect ratio kept as well as that allows. Same double arithmetic, same order.
 */
export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): [number, number] {
  if (!(height > 0 && width > 0)) throw new RangeError(`image of ${width}x${height} pixels`);
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw new RangeError(`absolute aspect ratio must be smaller than 200, got ${Math.max(height, width) / Math.min(height, width)}`);
  }
  let hBar = roundHalfEven(height / factor) * factor;
  let wBar = roundHalfEven(width / factor) * factor;
  if (hBar * wBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    hBar = Math.max(factor, Math.floor(height / beta / factor) * factor);
    wBar = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (hBar * wBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    hBar = Math.ceil((height * beta) / factor) * factor;
    wBar = Math.ceil((width * beta) / factor) * factor;
  }
  return [hBar, wBar];
}

function positiveInt(raw: Record<string, unknown>, key: string, fallback: number | undefined, source: string): number {
  const value = raw[key] ?? fallback;
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw new ImageConfigError(`${source}: ${key} must be a positive integer, got ${JSON.stringify(raw[key])}`);
  }
  return value as number;
}

function triple(raw: Record<string, unknown>, key: string, fallback: [number, number, number], source: string): [number, number, number] {
  const value = raw[key] ?? fallback;
  if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => typeof v === 'number' && Number.isFinite(v))) {
    throw new ImageConfigError(`${source}: ${key} must be three numbers, got ${JSON.stringify(raw[key])}`);
  }
  return value as [number, number, number];
}

/**
 * preprocessor_config.json of a Qwen2-VL folder (`source` names the file in errors). Newer
 * releases state the limits as `size: {shortest_edge: min_pixels, longest_edge: max_pixels}`.
 */
export function parseQwen2VlImageConfig(raw: Record<string, unknown>, source: string): Qwen2VlImageConfig {
  const size = (typeof raw.size === 'object' && raw.size !== null ? raw.size : {}) as Record<string, unknown>;
  const minPixels = positiveInt(raw, 'min_pixels', (size.shortest_edge as number | undefined) ?? 56 * 56, source);
  const maxPixels = positiveInt(raw, 'max_pixels', (size.longest_edge as number | undefined) ?? 28 * 28 * 1280, source);
  if (minPixels > maxPixels) throw new ImageConfigError(`${source}: min_pixels ${minPixels} exceeds max_pixels ${maxPixels}`);
  const resample = raw.resample ?? 3;
  // 3 is PIL.Image.BICUBIC; another filter would need another resize than the one implemented here.
  if (resample !== 3) throw new ImageConfigError(`${source}: resample ${JSON.stringify(resample)} is not supported (only 3, bicubic)`);
  const std = triple(raw, 'image_std', OPENAI_CLIP_STD, source);
  if (std.some((s) => s === 0)) throw new ImageConfigError(`${source}: image_std must not contain 0`);
  const rescaleFactor = raw.rescale_factor ?? 1 / 255;
  if (typeof rescaleFactor !== 'number' || !(rescaleFactor > 0)) throw new ImageConfigError(`${source}: rescale_factor must be a positive number`);
  return {
    patchSize: positiveInt(raw, 'patch_size', 14, source),
    temporalPatchSize: positiveInt(raw, 'temporal_patch_size', 2, source),
    mergeSize: positiveInt(raw, 'merge_size', 2, source),
    minPixels,
    maxPixels,
    mean: triple(raw, 'image_mean', OPENAI_CLIP_MEAN, source),
    std,
    rescaleFactor,
    doResize: raw.do_resize !== false,
    doRescale: raw.do_rescale !== false,
    doNormalize: raw.do_normalize !== false,
  };
}

/** The size an image of height × width is resized to. */
export function resizedSize(cfg: Qwen2VlImageConfig, height: number, width: number): [number, number] {
  if (!cfg.doResize) return [height, width];
  return smartResize(height, width, cfg.patchSize * cfg.mergeSize, cfg.minPixels, cfg.maxPixels);
}

/** Image tokens in the prompt for an image of height × width (before resizing). */
export function imageTokenCount(cfg: Qwen2VlImageConfig, height: number, width: number): number {
  const [h, w] = resizedSize(cfg, height, width);
  return ((h / cfg.patchSize) * (w / cfg.patchSize)) / (cfg.mergeSize * cfg.mergeSize);
}

/**
 * 8-bit RGB (HWC) → height' × width' with a bicubic filter: sharp's cubic kernel, horizontally
 * then vertically with uint8 in between, as Pillow does (see the top of this file).
 */
export async function resizeBicubic(rgb: Uint8Array, width: number, height: number, toWidth: number, toHeight: number): Promise<Uint8Array> {
  if (rgb.length !== width * height * 3) throw new RangeError(`expected ${width * height * 3} bytes for ${width}x${height} RGB, got ${rgb.length}`);
  if (width === toWidth && height === toHeight) return rgb;
  const pass = async (data: Uint8Array, w: number, h: number, toW: number, toH: number): Promise<Uint8Array> => {
    if (w === toW && h === toH) return data;
    const out = await sharp(data, { raw: { width: w, height: h, channels: 3 } })
      .resize(toW, toH, { kernel: 'cubic', fit: 'fill' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (out.info.width !== toW || out.info.height !== toH || out.info.channels !== 3) {
      throw new Error(`sharp resized to ${out.info.width}x${out.info.height}x${out.info.channels}, expected ${toW}x${toH}x3`);
    }
    return new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
  };
  const horizontal = await pass(rgb, width, height, toWidth, height);
  return pass(horizontal, toWidth, height, toWidth, toHeight);
}

/**
 * Already-resized 8-bit RGB (HWC, sides multiples of patchSize * mergeSize) → pixel_values.
 * Rescale: float32(v * rescaleFactor) with the multiply in float64 (numpy: uint8 * Python float);
 * normalise in float32: (x − mean) / std with float32 mean and std.
 */
export function patchesFromResized(cfg: Qwen2VlImageConfig, rgb: Uint8Array, width: number, height: number): ProcessedImage {
  const { patchSize: p, temporalPatchSize: tps, mergeSize: m } = cfg;
  if (height % (p * m) !== 0 || width % (p * m) !== 0) {
    throw new RangeError(`${width}x${height} is not a multiple of ${p * m} on both sides`);
  }
  if (rgb.length !== width * height * 3) throw new RangeError(`expected ${width * height * 3} bytes for ${width}x${height} RGB, got ${rgb.length}`);
  // One table per channel: each byte maps to one float, computed once in the order numpy uses.
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(cfg.mean[c]!);
    const std = Math.fround(cfg.std[c]!);
    for (let v = 0; v < 256; v++) {
      let x = cfg.doRescale ? Math.fround(v * cfg.rescaleFactor) : v;
      if (cfg.doNormalize) x = Math.fround(Math.fround(x - mean) / std);
      lut[c * 256 + v] = x;
    }
  }
  const gh = height / p;
  const gw = width / p;
  const patchDim = 3 * tps * p * p;
  const numPatches = gh * gw; // grid_t = 1: one image is one temporal patch of identical frames
  const out = new Float32Array(numPatches * patchDim);
  let n = 0;
  for (let bh = 0; bh < gh / m; bh++) {
    for (let bw = 0; bw < gw / m; bw++) {
      for (let ih = 0; ih < m; ih++) {
        for (let iw = 0; iw < m; iw++) {
          const row = m * bh + ih;
          const col = m * bw + iw;
          const base = n * patchDim;
          // [c][t][py][px]: the frame is copied to each of the temporal slots.
          for (let c = 0; c < 3; c++) {
            const frame = base + c * tps * p * p;
            for (let py = 0; py < p; py++) {
              const src = ((p * row + py) * width + p * col) * 3 + c;
              const dst = frame + py * p;
              for (let px = 0; px < p; px++) out[dst + px] = lut[c * 256 + rgb[src + 3 * px]!]!;
            }
            for (let t = 1; t < tps; t++) out.copyWithin(frame + t * p * p, frame, frame + p * p);
          }
          n++;
        }
      }
    }
  }
  return {
    pixelValues: out,
    numPatches,
    patchDim,
    gridThw: [1, gh, gw],
    numImageTokens: numPatches / (m * m),
    resizedHeight: height,
    resizedWidth: width,
  };
}

/** 8-bit RGB (HWC) at its own size, already composited onto white → the processor's output. */
export async function processRgbImage(cfg: Qwen2VlImageConfig, rgb: Uint8Array, width: number, height: number): Promise<ProcessedImage> {
  const [toHeight, toWidth] = resizedSize(cfg, height, width);
  const resized = await resizeBicubic(rgb, width, height, toWidth, toHeight);
  return patchesFromResized(cfg, resized, toWidth, toHeight);
}
