// Training and evaluation read the same few hundred images thousands of times: each distinct image
// is decoded and patchified once (by the serving preprocessor, so training sees exactly what the
// server will) and kept in memory.
import { readFile } from 'node:fs/promises';
import { decodeToSquareRgb, preprocessImage } from '../preprocess/image.ts';
import { numPatches, patchDim, type ModelConfig } from '../engine/model/config.ts';

export type PatchCache = Map<string, Float32Array>;
/** Decoded square 8-bit RGB rasters (imageSize²·3), for augmentation before patchifying. */
export type RasterCache = Map<string, Uint8Array>;

const LIMITS = { maxInputPixels: 64_000_000, maxBytes: 64 * 1024 * 1024 };

export async function patchesForImage(bytes: Uint8Array, c: ModelConfig): Promise<Float32Array> {
  const p = await preprocessImage(bytes, {
    imageSize: c.imageSize,
    patchSize: c.patchSize,
    channels: 3,
    mean: c.imageMean,
    std: c.imageStd,
    ...LIMITS,
  });
  if (p.patches.length !== numPatches(c) * patchDim(c)) throw new Error('preprocessImage returned an unexpected patch count');
  return p.patches;
}

export function buildPatchCache(imagePaths: Iterable<string>, c: ModelConfig, concurrency = 4): Promise<PatchCache> {
  return buildCache(imagePaths, concurrency, (bytes) => patchesForImage(bytes, c));
}

export function buildRasterCache(imagePaths: Iterable<string>, c: ModelConfig, concurrency = 4): Promise<RasterCache> {
  return buildCache(imagePaths, concurrency, (bytes) => decodeToSquareRgb(bytes, c.imageSize, LIMITS));
}

async function buildCache<T>(imagePaths: Iterable<string>, concurrency: number, load: (bytes: Uint8Array) => Promise<T>): Promise<Map<string, T>> {
  const cache = new Map<string, T>();
  const todo = [...new Set(imagePaths)];
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const path = todo[next++];
      try {
        cache.set(path, await load(await readFile(path)));
      } catch (e) {
        throw new Error(`${path}: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return cache;
}
