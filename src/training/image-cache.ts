// Training and evaluation read the same few hundred images thousands of times: each distinct image
// is decoded and patchified once (by the serving preprocessor, so training sees exactly what the
// server will) and kept in memory.
import { readFile } from 'node:fs/promises';
import { preprocessImage } from '../preprocess/image.ts';
import { numPatches, patchDim, type ModelConfig } from '../engine/model/config.ts';

export type PatchCache = Map<string, Float32Array>;

const LIMITS = { maxInputPixels: 64_000_000, maxBytes: 64 * 1024 * 1024 };

export async function patchesForImage(bytes: Uint8Array, c: ModelConfig): Promise<Float32Array> {
  const p = await preprocessImage(bytes, {
    imageSize: c.imageSize, patchSize: c.patchSize, channels: 3, mean: c.imageMean, std: c.imageStd, ...LIMITS,
  });
  if (p.patches.length !== numPatches(c) * patchDim(c)) throw new Error('preprocessImage returned an unexpected patch count');
  return p.patches;
}

export async function buildPatchCache(imagePaths: Iterable<string>, c: ModelConfig, concurrency = 4): Promise<PatchCache> {
  const cache: PatchCache = new Map();
  const todo = [...new Set(imagePaths)];
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const path = todo[next++];
      try {
        cache.set(path, await patchesForImage(await readFile(path), c));
      } catch (e) {
        throw new Error(`${path}: ${(e as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return cache;
}
