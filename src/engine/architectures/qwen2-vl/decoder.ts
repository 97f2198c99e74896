// Qwen2-VL's text model (Qwen2): RMSNorm pre-norm layers, grouped-query attention with q/k/v biases
// and multimodal rotary positions (M-RoPE), a SwiGLU MLP, a final RMSNorm and the output head.
import type { Value } from '../../graph/builder.ts';
import * as o from '../../graph/ops.ts';
import type { Qwen2VLConfig } from './config.ts';
import { MASK_FILL, applyRotary, linear, rmsNorm, scalarDim, silu } from './nn.ts';
import type { Qwen2VLParams } from './params.ts';

export interface KeyValue {
  /** [B, kv_heads, length, head_dim] */
  key: Value;
  value: Value;
}

/**
 * M-RoPE tables. Frequencies 1/θ^(2i/hd), laid out cat(f, f) over the head dim; the head dim is cut
 * into the sections `mrope_section` doubled, and chunk i takes its position from row i mod 3
 * (t, h, w). Returns per dim j: which row it reads and its frequency.
 */
export function mropeLayout(c: Qwen2VLConfig): { rowOf: number[]; freq: number[] } {
  const hd = c.text.headDim;
  const inv: number[] = [];
  for (let i = 0; i < hd; i += 2) inv.push(1 / c.text.ropeTheta ** (i / hd));
  const sections = [...c.text.mropeSection, ...c.text.mropeSection];
  const rowOf: number[] = [];
  sections.forEach((len, i) => {
    for (let k = 0; k < len; k++) rowOf.push(i % 3);
  });
  const freq = Array.from({ length: hd }, (_, j) => Math.fround(inv[j % (hd / 2)]));
  return { rowOf, freq };
}

/** position_ids [3, B, S] int64 → cos, sin [B, 1, S, hd]. */
export function mropeTables(c: Qwen2VLConfig, positionIds: Value): { cos: Value; sin: Value } {
  const g = positionIds.graph;
  const hd = c.text.headDim;
  const { rowOf, freq } = mropeLayout(c);
  // A 0/1 selection matrix: pos[b, s, :] · select picks each dim's row exactly (x·1 + 0 + 0).
  const select: number[] = new Array(3 * hd).fill(0);
  rowOf.forEach((r, j) => {
    select[r * hd + j] = 1;
  });
  const pos = o.transpose(o.cast(positionIds, g.floatType), [1, 2, 0]); // [B, S, 3]
  const picked = o.matmul(pos, g.constFloat(select, [3, hd])); // [B, S, hd]
  const angle = o.unsqueeze(o.mul(picked, g.constFloat(freq, [hd])), [1]); // [B, 1, S, hd]
  return { cos: o.cos(angle), sin: o.sin(angle) };
}

/**
 * Additive mask [B, 1, 1, S, T] for the 5-D grouped scores: query i (absolute index T − S + i) sees
 * key j when j ≤ T − S + i and attention_mask[b, j] ≠ 0. A cache buffer longer than what was written
 * works too: its unwritten slots are 0 in attention_mask.
 */
export function causalBias(attentionMask: Value, S: Value): Value {
  const g = attentionMask.graph;
  const zero = g.constInts([0], true);
  const one = g.constInts([1], true);
  const T = scalarDim(attentionMask, 1);
  const past = o.sub(T, S);
  const j = o.range(zero, T, one, attentionMask.shape[1]);
  const i = o.add(o.range(zero, S, one, 'sequence_length'), past);
  const causal = o.lessOrEqual(o.unsqueeze(j, [0]), o.unsqueeze(i, [1])); // [S, T]
  const keep = o.unsqueeze(o.cast(attentionMask, 'bool'), [1, 2, 3]); // [B, 1, 1, 1, T]
  const allowed = o.and(keep, causal); // [B, 1, 1, S, T]
  return o.where(allowed, g.constFloat(0), g.constFloat(MASK_FILL));
}

export type PresentMode = 'full' | 'new';

interface AttnArgs {
  cos: Value;
  sin: Value;
  bias: Value;
  past: KeyValue | null;
  present: PresentMode;
}

function attention(p: Qwen2VLParams, l: number, x: Value, a: AttnArgs): { out: Value; present: KeyValue } {
  const t = p.config.text;
  const rep = t.numHeads / t.numKvHeads;
  const name = `model.layers.${l}.self_attn`;
  const heads = (y: Value, n: number) => o.transpose(o.reshape(y, [0, 0, n, t.headDim]), [0, 2, 1, 3]); // [B, n, S, hd]
  const q = applyRotary(heads(linear(p, `${name}.q_proj`, x, true), t.numHeads), a.cos, a.sin);
  const k = applyRotary(heads(linear(p, `${name}.k_proj`, x, true), t.numKvHeads), a.cos, a.sin);
  const v = heads(linear(p, `${name}.v_proj`, x, true), t.numKvHeads);
  // Query head j reads kv head floor(j / rep): group the query heads as [B, kv, rep, S, hd] and let
  // MatMul broadcast each kv head over its group, so keys and values are never repeated.
  const q5 = o.reshape(o.mul(q, 1 / Math.sqrt(t.headDim)), [0, t.numKvHeads, rep, -1, t.headDim]);
  const kT5 = (kk: Value) => o.unsqueeze(o.transposeLast2(kk), [2]); // [B, kv, 1, hd, T]
  const v5 = (vv: Value) => o.unsqueeze(vv, [2]); // [B, kv, 1, T, hd]
  let ctx: Value; // [B, kv, rep, S, hd]
  let present: KeyValue;
  if (a.past && a.present === 'new') {
    // Past and new keys are never concatenated (that copies the whole cache each layer and step):
    // the two score blocks are, one row per query, softmaxed together and split again.
    const sPast = o.matmul(q5, kT5(a.past.key));
    const sNew = o.matmul(q5, kT5(k));
    const probs = o.softmax(o.add(o.concat([sPast, sNew], 4), a.bias), -1);
    const sizes = o.concat([o.dimOf(a.past.key, 2), o.dimOf(k, 2)], 0);
    const [pPast, pNew] = o.split(probs, sizes, 4, [sPast.shape, sNew.shape]);
    ctx = o.add(o.matmul(pPast, v5(a.past.value)), o.matmul(pNew, v5(v)));
    present = { key: k, value: v };
  } else {
    const K = a.past ? o.concat([a.past.key, k], 2) : k;
    const V = a.past ? o.concat([a.past.value, v], 2) : v;
    const probs = o.softmax(o.add(o.matmul(q5, kT5(K)), a.bias), -1);
    ctx = o.matmul(probs, v5(V));
    present = a.present === 'new' ? { key: k, value: v } : { key: K, value: V };
  }
  const merged = o.reshape(o.transpose(o.reshape(ctx, [0, t.numHeads, -1, t.headDim]), [0, 2, 1, 3]), [0, 0, t.hiddenSize]);
  return { out: linear(p, `${name}.o_proj`, merged, false), present };
}

function mlp(p: Qwen2VLParams, l: number, x: Value): Value {
  const name = `model.layers.${l}.mlp`;
  const gate = silu(linear(p, `${name}.gate_proj`, x, false));
  return linear(p, `${name}.down_proj`, o.mul(gate, linear(p, `${name}.up_proj`, x, false)), false);
}

export interface TextInputs {
  /** [B, S, H] */
  embeds: Value;
  /** [B, T] int64, T = cached + S; 1 = attend, 0 = padding or an unwritten cache slot. */
  attentionMask: Value;
  /** [3, B, S] int64 (t, h, w). */
  positionIds: Value;
  /** Per layer, the cache of earlier positions; null = no cache (a full pass). */
  past: KeyValue[] | null;
  /** What `presents` holds: past + new ('full') or only the positions fed now ('new'). */
  present: PresentMode;
}

export interface TextOutputs {
  /** [B, S, H] each layer's output (before the final norm). */
  layers: Value[];
  /** [B, S, H] the last layer's output (before the final norm). */
  last: Value;
  presents: KeyValue[];
}

export function textModel(p: Qwen2VLParams, inp: TextInputs): TextOutputs {
  const t = p.config.text;
  const { cos, sin } = mropeTables(p.config, inp.positionIds);
  const bias = causalBias(inp.attentionMask, scalarDim(inp.embeds, 1));
  let x = inp.embeds;
  const layers: Value[] = [];
  const presents: KeyValue[] = [];
  for (let l = 0; l < t.numLayers; l++) {
    const pre = `model.layers.${l}`;
    const att = attention(p, l, rmsNorm(p, `${pre}.input_layernorm`, x, t.rmsNormEps), {
      cos,
      sin,
      bias,
      past: inp.past ? inp.past[l] : null,
      present: inp.present,
    });
    const h = o.add(x, att.out);
    x = o.add(h, mlp(p, l, rmsNorm(p, `${pre}.post_attention_layernorm`, h, t.rmsNormEps)));
    layers.push(x);
    presents.push(att.present);
  }
  return { layers, last: x, presents };
}

/** Final RMSNorm. */
export function finalNorm(p: Qwen2VLParams, x: Value): Value {
  return rmsNorm(p, 'model.norm', x, p.config.text.rmsNormEps);
}

/** [.., H] → [.., vocab] through lm_head (or the tied embeddings). */
export function lmHead(p: Qwen2VLParams, hidden: Value): Value {
  const w = p.lmHead();
  const H = p.config.text.hiddenSize;
  const V = p.config.text.vocabSize;
  const flat = hidden.rank === 2 ? hidden : o.reshape(hidden, [-1, H]);
  let y = o.matmul(flat, w);
  if (hidden.rank !== 2) {
    const outShape = o.concat([o.slice(o.shapeOf(hidden), [0], [hidden.rank - 1], [0]), hidden.graph.constInts([V])], 0);
    y = o.reshape(y, outShape, [...hidden.shape.slice(0, -1), V]);
  }
  return p.lora ? p.lora.apply('lm_head', hidden, y) : y;
}

/** input_ids [B, S] → [B, S, H] */
export function embedTokens(p: Qwen2VLParams, ids: Value): Value {
  return o.gather(p.tensor('model.embed_tokens.weight'), ids, 0);
}
