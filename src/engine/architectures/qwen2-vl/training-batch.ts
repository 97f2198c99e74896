// Sequences (prompt with its images' tokens expanded, then the completion) → the training graph's
// inputs: left padding, next-token targets, a loss mask that is 1 exactly where the target is a
// completion token, and positions and image slots as generation saw them: get_rope_index over the
// prompt, then each completion token at its cache index + rope_delta, and only the prompt's image
// tokens take image features (a sampled image-token id in a completion is an ordinary token there).
import type { Qwen2VLConfig } from './config.ts';
import { ropeIndex, type GridThw } from './rope-index.ts';

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
  /** [B, S]: 1 where the position takes the next image feature. */
  imageMask: BigInt64Array;
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
  const spec = { imageTokenId: c.tokens.imageTokenId, visionStartTokenId: c.tokens.visionStartTokenId, spatialMergeSize: c.vision.spatialMergeSize };
  const B = rows.length;
  const S = Math.max(...rows.map((r) => r.ids.length));
  const inputIds = new BigInt64Array(B * S).fill(BigInt(padId));
  const targets = new BigInt64Array(B * S).fill(BigInt(padId));
  const attentionMask = new BigInt64Array(B * S);
  const imageMask = new BigInt64Array(B * S);
  // Padding positions are never attended; 1 is what the serving batcher puts there too.
  const positionIds = new BigInt64Array(3 * B * S).fill(1n);
  const lossMask = new Float32Array(B * S);
  const padding: number[] = [];
  rows.forEach((r, b) => {
    const pad = S - r.ids.length;
    padding.push(pad);
    const prompt = r.ids.slice(0, r.promptLength);
    const { positions, ropeDelta } = ropeIndex(prompt, r.grids, spec);
    const at = b * S + pad;
    r.ids.forEach((id, k) => {
      inputIds[at + k] = BigInt(id);
      attentionMask[at + k] = 1n;
      if (k < r.promptLength && id === spec.imageTokenId) imageMask[at + k] = 1n;
      for (let axis = 0; axis < 3; axis++) {
        positionIds[(axis * B + b) * S + pad + k] = BigInt(k < r.promptLength ? positions[axis]![k]! : k + ropeDelta);
      }
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
    B,
    S,
    inputIds,
    targets,
    attentionMask,
    positionIds,
    pixelValues,
    imageMask,
    gridThw: BigInt64Array.from(grids.flat().map(BigInt)),
    numImages: grids.length,
    lossMask,
    padding,
  };
}
