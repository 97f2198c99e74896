// Turns token sequences into the tensors the training graph takes: right-padded ids and targets,
// positions, and the additive attention mask (causal, padding keys dropped). Kept in TS, not in
// the graph, so masking schemes change without touching the model definition.
import { MASKED } from './serving-io.ts';

export interface TrainingRowsInput {
  numPatches: number;
  /** Text tokens of each row (prompt + completion), at least 2 long. */
  rows: number[][];
  padId: number;
}

export interface TrainingBatch {
  batch: number;
  /** Text positions T = longest row − 1 (the last token is only ever a target). */
  text: number;
  inputIds: BigInt64Array; // [B, T]
  targets: BigInt64Array; // [B, T]
  positionIds: BigInt64Array; // [B, Np+T]
  attentionBias: Float32Array; // [B, 1, Np+T, Np+T]
  /** 1 where targets[b, t] is a real next token (t < len−1), else 0. */
  targetMask: Float32Array; // [B, T]
}

export function trainingBatch({ numPatches, rows, padId }: TrainingRowsInput): TrainingBatch {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length)) - 1;
  if (T < 1) throw new Error('trainingBatch: rows need at least two tokens');
  const S = numPatches + T;
  const inputIds = new BigInt64Array(B * T).fill(BigInt(padId));
  const targets = new BigInt64Array(B * T).fill(BigInt(padId));
  const targetMask = new Float32Array(B * T);
  const positionIds = new BigInt64Array(B * S);
  const attentionBias = new Float32Array(B * S * S).fill(MASKED);
  rows.forEach((r, b) => {
    for (let t = 0; t < r.length - 1; t++) {
      inputIds[b * T + t] = BigInt(r[t]);
      targets[b * T + t] = BigInt(r[t + 1]);
      targetMask[b * T + t] = 1;
    }
    const valid = numPatches + r.length - 1;
    for (let s = 0; s < S; s++) positionIds[b * S + s] = BigInt(s);
    for (let q = 0; q < S; q++) {
      const row = (b * S + q) * S;
      // A padding query still attends to the valid keys, so its softmax stays finite.
      for (let k = 0; k <= Math.min(q, valid - 1); k++) attentionBias[row + k] = 0;
    }
  });
  return { batch: B, text: T, inputIds, targets, positionIds, attentionBias, targetMask };
}
