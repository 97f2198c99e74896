// Qwen2-VL's vision tower: patch embed (a MatMul over the C·T·P·P patch vectors), `depth` pre-LN
// blocks with 2-D rotary attention that stays within each image frame, and the PatchMerger (2×2
// neighbouring patches → one token of the text model's width).
//
// Patches arrive in merge-grouped order (the image processor's): per frame, blocks of m×m
// neighbours, the block grid row-major. Rotary positions and the block-diagonal attention mask are
// computed here, in the graph, from grid_thw, so a caller feeds only pixel_values and grid_thw and
// several images go through one call.
import type { Graph, Value } from '../../graph/builder.ts';
import * as o from '../../graph/ops.ts';
import type { Qwen2VLConfig } from './config.ts';
import { MASK_FILL, applyRotary, geluErf, layerNorm, linear, quickGelu, scalarDim } from './nn.ts';
import type { Qwen2VLParams } from './params.ts';

export interface VisionLayout {
  /** [N, 1, d] rotary tables, broadcasting over heads. */
  cos: Value;
  sin: Value;
  /** [N, N] additive mask: 0 within one frame, MASK_FILL across frames. */
  bias: Value;
}

/** 1 / 10000^(2i/(d/2)) for i < d/4: the per-axis frequencies of the 2-D vision rotary. */
export function visionInvFreq(headDim: number): number[] {
  const half = headDim / 2;
  const out: number[] = [];
  for (let i = 0; i < half; i += 2) out.push(1 / 10000 ** (i / half));
  return out;
}

/**
 * Per patch n (0 ≤ n < N = rows of `pixels`): its image (how many images end at or before n), its
 * frame, and its (row, col) in that frame from the merge-grouped index; then the rotary tables and
 * the mask. `gridThw` [num_images, 3] int64.
 */
export function visionLayout(c: Qwen2VLConfig, pixels: Value, gridThw: Value): VisionLayout {
  const g = pixels.graph;
  const m = c.vision.spatialMergeSize;
  const N = pixels.shape[0];
  const one = g.constInts([1], true);
  const n = o.range(g.constInts([0], true), scalarDim(pixels, 0), one, N); // [N]
  const col = (i: number) => o.gather(gridThw, g.constInts([i], true), 1); // [I]
  const [t, h, w] = [col(0), col(1), col(2)];
  const frame = o.mul(h, w);
  const sizes = o.mul(t, frame);
  const ends = o.cumSum(sizes, 0);
  const starts = o.sub(ends, sizes);
  const image = o.reduceSum(o.cast(o.lessOrEqual(o.unsqueeze(ends, [0]), o.unsqueeze(n, [1])), 'int64'), [1], false); // [N]
  const local = o.sub(n, o.gather(starts, image, 0));
  const q = o.mod(local, o.gather(frame, image, 0)); // index within the frame
  const frameStart = o.sub(n, q);
  const iw = o.mod(q, m);
  const ih = o.mod(o.div(q, m), m);
  const blk = o.div(q, m * m);
  const blocksPerRow = o.div(o.gather(w, image, 0), m);
  const bw = o.mod(blk, blocksPerRow);
  const bh = o.div(blk, blocksPerRow);
  const row = o.add(o.mul(bh, m), ih);
  const colIdx = o.add(o.mul(bw, m), iw);

  const inv = visionInvFreq(c.vision.headDim);
  const invT = g.constFloat(inv, [1, inv.length]);
  const angles = (pos: Value) => o.mul(o.unsqueeze(o.cast(pos, g.floatType), [1]), invT); // [N, d/4]
  const half = o.concat([angles(row), angles(colIdx)], 1); // [N, d/2]
  const emb = o.unsqueeze(o.concat([half, half], 1), [1]); // [N, 1, d]
  const same = o.equal(o.unsqueeze(frameStart, [1]), o.unsqueeze(frameStart, [0])); // [N, N]
  const bias = o.where(same, g.constFloat(0), g.constFloat(MASK_FILL));
  return { cos: o.cos(emb), sin: o.sin(emb), bias };
}

function visionAttention(p: Qwen2VLParams, name: string, x: Value, lay: VisionLayout): Value {
  const v = p.config.vision;
  const E = v.embedDim;
  const qkv = linear(p, `${name}.qkv`, x, true); // [N, 3E]: q rows, then k, then v
  const heads = (i: number) => o.reshape(o.slice(qkv, [i * E], [(i + 1) * E], [1]), [0, v.numHeads, v.headDim]); // [N, h, d]
  const q = o.mul(applyRotary(heads(0), lay.cos, lay.sin), 1 / Math.sqrt(v.headDim));
  const k = applyRotary(heads(1), lay.cos, lay.sin);
  const vv = heads(2);
  const qh = o.transpose(q, [1, 0, 2]); // [h, N, d]
  const kT = o.transpose(k, [1, 2, 0]); // [h, d, N]
  const vh = o.transpose(vv, [1, 0, 2]);
  const probs = o.softmax(o.add(o.matmul(qh, kT), lay.bias), -1); // [h, N, N]
  const ctx = o.reshape(o.transpose(o.matmul(probs, vh), [1, 0, 2]), [0, E]); // [N, E]
  return linear(p, `${name}.proj`, ctx, true);
}

function visionBlock(p: Qwen2VLParams, i: number, x: Value, lay: VisionLayout): Value {
  const b = `visual.blocks.${i}`;
  const eps = p.config.vision.layerNormEps;
  const h = o.add(x, visionAttention(p, `${b}.attn`, layerNorm(p, `${b}.norm1`, x, eps), lay));
  const mlp = linear(p, `${b}.mlp.fc2`, quickGelu(linear(p, `${b}.mlp.fc1`, layerNorm(p, `${b}.norm2`, h, eps), true)), true);
  return o.add(h, mlp);
}

export interface VisionOutputs {
  /** [N, E] after the patch embed. */
  patchEmbeds: Value;
  /** [N, E] after each block. */
  blocks: Value[];
  /** [N / m², hidden] the merger's output: one row per image token. */
  features: Value;
}

/** pixels [N, C·T·P·P] in merge-grouped order → image features. */
export function visionTower(p: Qwen2VLParams, pixels: Value, gridThw: Value): VisionOutputs {
  const v = p.config.vision;
  const lay = visionLayout(p.config, pixels, gridThw);
  const patchEmbeds = o.matmul(pixels, p.linear('visual.patch_embed.proj.weight'));
  const blocks: Value[] = [];
  let x = patchEmbeds;
  for (let i = 0; i < v.depth; i++) {
    x = visionBlock(p, i, x, lay);
    blocks.push(x);
  }
  const group = v.spatialMergeSize * v.spatialMergeSize * v.embedDim;
  const merged = o.reshape(layerNorm(p, 'visual.merger.ln_q', x, v.layerNormEps), [-1, group]);
  const features = linear(p, 'visual.merger.mlp.2', geluErf(linear(p, 'visual.merger.mlp.0', merged, true)), true);
  return { patchEmbeds, blocks, features };
}

export type { Graph };
