// Sequences (prompt with its images' tokens expanded, then the completion) → the training graph's
// inputs: left padding, positions by get_rope_index over each row's own tokens, next-token targets,
// and a loss mask that is 1 exactly where the target is a completion token.
import type { Qwen2VLConfig } from './config.ts';
import { batchRopeIndex, type GridThw } from './rope-index.ts';

export interface Qwen2VLSequence {
  /** Prompt then completion ids. */
  ids: readonly number[];
  /** How many of `ids` are the prompt (the rest are scored). */
  promptLength: number;
  /** The row's images: pixel_values concatenated, grids in order. */
  pixelValues: Float32Array;
  grids: readonly GridThw[];
}

export interface Qwen2VLTrainingBatch {
  B: number;
  S: number;
  inputIds: BigInt64Array;
  targets: BigInt64Array;
  attentionMask: BigInt64Array;
  positionIds: BigInt64Array;
  pixelValues: Float32Array;
  gridThw: BigInt64Array;
  numImages: number;
  /** [B, S]: 1 where position s predicts a completion token. */
  lossMask: Float32Array;
  /** Left padding of each row. */
  padding: number[];
}

export function qwen2VLTrainingBatch(c: Qwen2VLConfig, rows: readonly Qwen2VLSequence[], padId: number): Qwen2VLTrainingBatch {
  if (rows.length === 0) throw new Error('a training batch needs at least one row');
  rows.forEach((r, b) => {
    if (!(r.promptLength >= 1 && r.promptLength <= r.ids.length)) throw new Error(`row ${b}: prompt length ${r.promptLength} of ${r.ids.length} ids`);
  });
  const layout = batchRopeIndex(rows.map((r) => r.ids), rows.map((r) => r.grids), {
    imageTokenId: c.tokens.imageTokenId,
    visionStartTokenId: c.tokens.visionStartTokenId,
    spatialMergeSize: c.vision.spatialMergeSize,
  });
  const B = rows.length;
  const S = layout.length;
  const inputIds = new BigInt64Array(B * S).fill(BigInt(padId));
  const targets = new BigInt64Array(B * S).fill(BigInt(padId));
  const lossMask = new Float32Array(B * S);
  rows.forEach((r, b) => {
    const at = b * S + layout.padding[b]!;
    r.ids.forEach((id, k) => {
      inputIds[at + k] = BigInt(id);
      if (k + 1 < r.ids.length) {
        targets[at + k] = BigInt(r.ids[k + 1]!);
        if (k + 1 >= r.promptLength) lossMask[at + k] = 1;
      }
    });
  });
  const pixelValues = new Float32Array(rows.reduce((n, r) => n + r.pixelValues.length, 0));
  let off = 0;
  for (const r of rows) {
    pixelValues.set(r.pixelValues, off);
    off += r.pixelValues.length;
  }
  const grids = rows.flatMap((r) => r.grids);
  return {
    B, S, inputIds, targets, attentionMask: layout.attentionMask, positionIds: layout.positionIds, pixelValues,
    gridThw: BigInt64Array.from(grids.flat().map(BigInt)), numImages: grids.length, lossMask, padding: layout.padding,
  };
}
