// Global-norm gradient clipping, as torch.nn.utils.clip_grad_norm_: all gradients are treated as one
// vector; if its L2 norm exceeds maxNorm, every gradient is scaled by maxNorm / (norm + 1e-6).

import type { NamedArrays } from './adamw.ts';

function valuesOf(grads: NamedArrays): Iterable<Float32Array> {
  return grads instanceof Map ? grads.values() : Object.values(grads as Record<string, Float32Array>);
}

/**
 * L2 norm of all gradients together. Squares are accumulated in float64: a float32 sum would lose
 * precision over millions of elements and overflow once any element exceeds ~1.8e19.
 */
export function globalGradNorm(grads: NamedArrays): number {
  let sumSquares = 0;
  for (const g of valuesOf(grads)) {
    // A partial sum per tensor keeps small tensors from being swamped by a large running total.
    let partial = 0;
    for (let i = 0, n = g.length; i < n; i++) {
      const x = g[i]!;
      partial += x * x;
    }
    sumSquares += partial;
  }
  return Math.sqrt(sumSquares);
}

/**
 * Scales the gradients in place so their global norm is at most `maxNorm`, and returns the norm they
 * had before clipping (for logging, and for spotting divergence). A non-finite norm leaves the
 * gradients untouched — scaling by NaN would only hide which values were bad — and the caller should
 * skip the optimizer step.
 */
export function clipGradNorm(grads: NamedArrays, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(maxNorm)) throw new RangeError(`maxNorm must be finite and > 0, got ${maxNorm}`);
  const norm = globalGradNorm(grads);
  if (!Number.isFinite(norm)) return norm;
  const scale = maxNorm / (norm + 1e-6);
  if (scale < 1) {
    for (const g of valuesOf(grads)) {
      for (let i = 0, n = g.length; i < n; i++) g[i] = g[i]! * scale;
    }
  }
  return norm;
}
