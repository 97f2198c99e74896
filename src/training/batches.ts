// Rows of token ids (+ their images) → the training graph's tensors, with a loss mask that covers
// only the taught part of each row (its completion), never the prompt or the padding.
import { trainingBatch, type TrainingBatch } from '../engine/model/batch-inputs.ts';
import { numPatches, patchDim, type ModelConfig } from '../engine/model/config.ts';

export interface BatchRow {
  ids: number[];
  /** Tokens ids[promptLength..] are taught (their log-probs enter the loss). */
  promptLength: number;
  patches: Float32Array;
}

export interface AssembledBatch {
  batch: TrainingBatch;
  patches: Float32Array;
  /** [B, T] 1 where targets[b, t] is a completion token. */
  lossMask: Float32Array;
}

export function assembleBatch(c: ModelConfig, rows: readonly BatchRow[], padId: number): AssembledBatch {
  const np = numPatches(c);
  const pd = patchDim(c);
  const batch = trainingBatch({ numPatches: np, rows: rows.map((r) => r.ids), padId });
  const T = batch.text;
  const lossMask = new Float32Array(rows.length * T);
  const patches = new Float32Array(rows.length * np * pd);
  rows.forEach((r, b) => {
    // targets[t] = ids[t + 1]: completion token j is the target at t = j − 1.
    for (let t = Math.max(0, r.promptLength - 1); t < r.ids.length - 1; t++) lossMask[b * T + t] = 1;
    patches.set(r.patches, b * np * pd);
  });
  return { batch, patches, lossMask };
}
