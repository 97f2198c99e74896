// Transformer building blocks shared by the vision encoder and the decoder.
import type { Value } from '../graph/builder.ts';
import * as o from '../graph/ops.ts';
import type { ParamSource } from './params.ts';

/**
 * x·W + b over the last axis. The leading axes are folded into one before the MatMul: ORT runs
 * [B, S, D]·[D, E] as B separate GEMMs, each reading all of W, so a batch of single-token decode
 * steps cost B× one step (measured: batch 16 at 9–10 ms/step vs 0.5 ms alone). As one
 * [B·S, D]·[D, E] GEMM the weights are read once per step.
 */
export function linear(ps: ParamSource, name: string, x: Value, inDim: number, outDim: number, scaled = false): Value {
  const w = ps.get(`${name}.weight`, [inDim, outDim], scaled ? 'normal_scaled' : 'normal');
  const b = ps.get(`${name}.bias`, [outDim], 'zeros');
  if (x.rank === 2) return o.add(o.matmul(x, w), b);
  const rows = o.add(o.matmul(o.reshape(x, [-1, inDim]), w), b);
  const outShape = o.concat([o.slice(o.shapeOf(x), [0], [x.rank - 1], [0]), x.graph.constInts([outDim])], 0);
  return o.reshape(rows, outShape, [...x.shape.slice(0, -1), outDim]);
}

/**
 * LayerNorm written out in primitive ops. The variance squares with Pow(c, 2), not Mul(c, c):
 * that is the pattern ORT's LayerNormFusion recognises, so serving graphs run one fused kernel
 * (measured: decoder 199 → 127 kernels, a full pass ~10% faster).
 */
export function layerNorm(ps: ParamSource, name: string, x: Value, dim: number, eps: number): Value {
  const gain = ps.get(`${name}.weight`, [dim], 'ones');
  const bias = ps.get(`${name}.bias`, [dim], 'zeros');
  const centred = o.sub(x, o.reduceMean(x, [-1], true));
  const variance = o.reduceMean(o.pow(centred, 2), [-1], true);
  const normed = o.div(centred, o.sqrt(o.add(variance, eps)));
  return o.add(o.mul(normed, gain), bias);
}

/** GELU, tanh form: ORT's CPU provider has no float64 Erf, which the gradient checks need. */
export function gelu(x: Value): Value {
  const inner = o.mul(o.add(x, o.mul(o.pow(x, 3), 0.044715)), Math.sqrt(2 / Math.PI));
  return o.mul(o.mul(x, 0.5), o.add(o.tanh(inner), 1));
}

export interface KeyValue {
  key: Value; // [B, H, S, Dh]
  value: Value; // [B, H, S, Dh]
}

export interface AttentionArgs {
  dim: number;
  heads: number;
  /** Additive mask [B, 1, Sq, P + Sq] (0 keep, large negative drop); none = full attention. */
  bias: Value | null;
  /** Keys/values of P earlier positions (the KV cache); null = attend within this pass only. */
  past: KeyValue | null;
}

/**
 * Multi-head self-attention with an optional KV cache. Returns the output and `present`: the keys
 * and values of THIS pass's positions only [B, H, Sq, Dh], never past + new — the caller owns the
 * cache and appends them itself.
 *
 * With a cache the past keys/values are never concatenated with the new ones: that Concat copied
 * the whole cache every layer and step, and as a graph output it was copied again into JS (at batch
 * 16 a decode step went from 0.5 to 5.5 ms, almost all of it cache traffic). Instead the two SCORE
 * blocks q·past_kᵀ [B,H,Sq,P] and q·kᵀ [B,H,Sq,Sq] are concatenated (one row per query, small),
 * masked and softmaxed together, then split again: out = p_past·past_v + p_new·v.
 */
export function attention(ps: ParamSource, name: string, x: Value, a: AttentionArgs): { out: Value; present: KeyValue } {
  const headDim = a.dim / a.heads;
  const qkv = linear(ps, `${name}.qkv`, x, a.dim, 3 * a.dim);
  const g = x.graph;
  const sq = x.shape[1];
  const [q, k, v] = o.split(
    qkv,
    g.constInts([a.dim, a.dim, a.dim]),
    -1,
    [0, 1, 2].map(() => [x.shape[0], sq, a.dim]),
  );
  const heads = (t: Value) => o.reshape(t, [0, 0, a.heads, headDim]);
  // Scale q rather than the scores: [B,H,S,Dh] is smaller than [B,H,S,S].
  const qh = o.transpose(heads(o.mul(q, 1 / Math.sqrt(headDim))), [0, 2, 1, 3]);
  const kh = o.transpose(heads(k), [0, 2, 1, 3]);
  const vh = o.transpose(heads(v), [0, 2, 1, 3]);
  let ctx: Value; // [B, H, Sq, Dh]
  if (a.past) {
    const scoresPast = o.matmul(qh, o.transposeLast2(a.past.key)); // [B, H, Sq, P]
    const scoresNew = o.matmul(qh, o.transposeLast2(kh)); // [B, H, Sq, Sq]
    let scores = o.concat([scoresPast, scoresNew], 3);
    if (a.bias) scores = o.add(scores, a.bias);
    const probs = o.softmax(scores, -1);
    const sizes = o.concat([o.dimOf(a.past.key, 2), o.dimOf(kh, 2)], 0);
    const [pPast, pNew] = o.split(probs, sizes, 3, [scoresPast.shape, scoresNew.shape]);
    ctx = o.add(o.matmul(pPast, a.past.value), o.matmul(pNew, vh));
  } else {
    // The training graph: one pass over every position (its gradients are checked as written).
    let scores = o.matmul(qh, o.transposeLast2(kh));
    if (a.bias) scores = o.add(scores, a.bias);
    ctx = o.matmul(o.softmax(scores, -1), vh);
  }
  const merged = o.reshape(o.transpose(ctx, [0, 2, 1, 3]), [0, 0, a.dim]);
  return { out: linear(ps, `${name}.proj`, merged, a.dim, a.dim, true), present: { key: kh, value: vh } };
}

export interface BlockArgs extends AttentionArgs {
  mlpRatio: number;
  eps: number;
}

/** Pre-LN transformer block: x + attn(ln(x)), then x + mlp(ln(x)). `present`: this pass's keys/values. */
export function block(ps: ParamSource, name: string, x: Value, a: BlockArgs): { out: Value; present: KeyValue } {
  const att = attention(ps, `${name}.attn`, layerNorm(ps, `${name}.ln1`, x, a.dim, a.eps), a);
  const h = o.add(x, att.out);
  const hidden = a.dim * a.mlpRatio;
  const m = linear(ps, `${name}.mlp.fc1`, layerNorm(ps, `${name}.ln2`, h, a.dim, a.eps), a.dim, hidden);
  const out = o.add(h, linear(ps, `${name}.mlp.fc2`, gelu(m), hidden, a.dim, true));
  return { out, present: att.present };
}
