// Building blocks shared by Qwen2-VL's vision tower and text decoder, in plain ONNX ops that the
// autodiff rules cover (or can), written in the patterns ORT's optimiser fuses.
import type { Value } from '../../graph/builder.ts';
import * as o from '../../graph/ops.ts';
import type { Qwen2VLParams } from './params.ts';

/**
 * x·Wᵀ (+ b) over the last axis, leading axes folded into one GEMM: ORT runs [B, S, D]·[D, E] as B
 * GEMMs that each read all of W, so a batch of one-token decode steps would read the weights B times.
 */
export function linear(p: Qwen2VLParams, name: string, x: Value, bias: boolean): Value {
  const w = p.linear(`${name}.weight`);
  const outDim = w.shape[1] as number;
  const inDim = w.shape[0] as number;
  const flat = x.rank === 2 ? x : o.reshape(x, [-1, inDim]);
  let y = o.matmul(flat, w);
  if (bias) y = o.add(y, p.tensor(`${name}.bias`));
  if (x.rank === 2) return y;
  const outShape = o.concat([o.slice(o.shapeOf(x), [0], [x.rank - 1], [0]), x.graph.constInts([outDim])], 0);
  return o.reshape(y, outShape, [...x.shape.slice(0, -1), outDim]);
}

/** LayerNorm with affine weights; Pow(c, 2) is the pattern ORT's LayerNormFusion recognises. */
export function layerNorm(p: Qwen2VLParams, name: string, x: Value, eps: number): Value {
  const centred = o.sub(x, o.reduceMean(x, [-1], true));
  const variance = o.reduceMean(o.pow(centred, 2), [-1], true);
  const normed = o.div(centred, o.sqrt(o.add(variance, eps)));
  return o.add(o.mul(normed, p.tensor(`${name}.weight`)), p.tensor(`${name}.bias`));
}

/** RMSNorm `w · x / sqrt(mean(x²) + eps)`, in the shape ORT fuses into SimplifiedLayerNormalization. */
export function rmsNorm(p: Qwen2VLParams, name: string, x: Value, eps: number): Value {
  const ms = o.reduceMean(o.pow(x, 2), [-1], true);
  return o.mul(o.div(x, o.sqrt(o.add(ms, eps))), p.tensor(`${name}.weight`));
}

/** cat(−x[d/2:], x[:d/2]) over the last axis (static size d). */
export function rotateHalf(x: Value): Value {
  const d = x.shape[x.rank - 1];
  if (typeof d !== 'number' || d % 2 !== 0) throw new Error(`rotateHalf: last dim ${d} must be a static even size`);
  const a = o.slice(x, [0], [d / 2], [-1]);
  const b = o.slice(x, [d / 2], [d], [-1]);
  return o.concat([o.neg(b), a], -1);
}

/** x·cos + rotate_half(x)·sin, cos/sin broadcasting against x. */
export function applyRotary(x: Value, cos: Value, sin: Value): Value {
  return o.add(o.mul(x, cos), o.mul(rotateHalf(x), sin));
}

/** x·sigmoid(1.7x) */
export function quickGelu(x: Value): Value {
  return o.mul(x, o.sigmoid(o.mul(x, 1.702)));
}

/** Exact GELU 0.5·x·(1 + erf(x/√2)): the merger's activation (the tanh form differs by ~4e-4). */
export function geluErf(x: Value): Value {
  return o.mul(o.mul(x, 0.5), o.add(o.erf(o.mul(x, Math.SQRT1_2)), 1));
}

/** x·sigmoid(x) */
export function silu(x: Value): Value {
  return o.mul(x, o.sigmoid(x));
}

/** A scalar int64 dim of `x` (for Range). */
export function scalarDim(x: Value, axis: number): Value {
  return o.squeeze(o.dimOf(x, axis), [0]);
}

/** Masked-out score: finite, so a row with nothing to attend (padding) gives a uniform softmax, not NaN. */
export const MASK_FILL = -1e30;
