// Image augmentation for GRPO rollouts. Our model learns its vision from a few hundred training
// images (SLAKE: 450), so on a training image it partly recalls the answer rather than reading it,
// while validation and test images are unseen. Rollouts on lightly perturbed copies put the policy
// in the unseen-image regime where its mistakes are (e.g. its "no" bias), so the reward teaches
// what transfers. Perturbations keep the labels true: no flips or rotations (left/right and
// position questions), only a mild zoom/shift and a brightness/contrast change.
import { patchify, RGB_CHANNELS } from '../preprocess/patchify.ts';
import type { ModelConfig } from '../engine/model/config.ts';

export interface AugmentOptions {
  /** Smallest crop side as a fraction of the image side (1 = no zoom). */
  minScale: number;
  /** Contrast factor drawn from [1 − j, 1 + j]. */
  contrastJitter: number;
  /** Brightness offset drawn from [−j, +j] (8-bit levels). */
  brightnessJitter: number;
}

export const DEFAULT_AUGMENT: AugmentOptions = { minScale: 0.8, contrastJitter: 0.15, brightnessJitter: 12 };

/**
 * A random crop of the square raster (side s·size at a random offset), resampled bilinearly back to
 * size × size, then v ↦ a·(v − 128) + 128 + b per sample, clamped to 0..255.
 */
export function augmentRaster(rgb: Uint8Array, size: number, rand: () => number, o: AugmentOptions = DEFAULT_AUGMENT): Uint8Array {
  if (rgb.length !== size * size * RGB_CHANNELS) throw new RangeError(`augmentRaster: expected ${size}x${size} RGB`);
  const side = size * (o.minScale + (1 - o.minScale) * rand());
  const x0 = (size - side) * rand();
  const y0 = (size - side) * rand();
  const a = 1 + o.contrastJitter * (2 * rand() - 1);
  const b = o.brightnessJitter * (2 * rand() - 1);
  const step = side / size;
  const out = new Uint8Array(rgb.length);
  for (let y = 0; y < size; y++) {
    // Sample at pixel centres of the crop, in source pixel coordinates.
    const sy = Math.min(size - 1, Math.max(0, y0 + (y + 0.5) * step - 0.5));
    const yA = Math.floor(sy);
    const yB = Math.min(size - 1, yA + 1);
    const fy = sy - yA;
    for (let x = 0; x < size; x++) {
      const sx = Math.min(size - 1, Math.max(0, x0 + (x + 0.5) * step - 0.5));
      const xA = Math.floor(sx);
      const xB = Math.min(size - 1, xA + 1);
      const fx = sx - xA;
      for (let c = 0; c < RGB_CHANNELS; c++) {
        const p = (yy: number, xx: number) => rgb[(yy * size + xx) * RGB_CHANNELS + c];
        const v = (1 - fy) * ((1 - fx) * p(yA, xA) + fx * p(yA, xB)) + fy * ((1 - fx) * p(yB, xA) + fx * p(yB, xB));
        out[(y * size + x) * RGB_CHANNELS + c] = Math.max(0, Math.min(255, Math.round(a * (v - 128) + 128 + b)));
      }
    }
  }
  return out;
}

/** An augmented copy of a cached raster, patchified for the vision encoder. */
export function augmentedPatches(rgb: Uint8Array, c: ModelConfig, rand: () => number, o: AugmentOptions = DEFAULT_AUGMENT): Float32Array {
  return patchify(augmentRaster(rgb, c.imageSize, rand, o), c.imageSize, c.patchSize, c.imageMean, c.imageStd);
}
