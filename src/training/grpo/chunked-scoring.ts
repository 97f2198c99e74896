// GRPO scores prompts × generations sequences per step (log-probs under the current, old and
// reference policies, then one backward pass). ORT's training graph keeps every activation of a
// pass alive, so its memory grows with the sequences in it: 96 prompts × 8 generations (768
// sequences) in one pass was killed for memory on a 24 GiB machine, while 384 ran. Passes of at
// most `maxRows` sequences bound that memory; their per-token outputs are laid back into the one
// [N, T] layout the loss works on, and their weight gradients are summed (the loss is a sum over
// tokens, so the chunked gradient is the same sum in another order).
import type { ModelConfig } from '../../engine/model/config.ts';
import type { Weights } from '../../engine/model/params.ts';
import type { ForwardResult, TrainingSession } from '../../engine/train/training-session.ts';
import { assembleBatch, type AssembledBatch, type BatchRow } from '../batches.ts';

/** Sequences per ORT pass: 256 (32 prompts × 8 generations) is well inside 24 GiB at `small`. */
export const MAX_SEQUENCES_PER_PASS = 256;

export interface ScoringBatch {
  numSequences: number;
  /** Columns of the [N, T] per-token layout (the longest row's). */
  seqLen: number;
  /** [N, T] 1 where a completion token is scored. */
  lossMask: Float32Array;
  chunks: { start: number; assembled: AssembledBatch }[];
}

export function scoringBatch(config: ModelConfig, rows: readonly BatchRow[], padId: number, maxRows = MAX_SEQUENCES_PER_PASS): ScoringBatch {
  if (!(Number.isInteger(maxRows) && maxRows > 0)) throw new Error(`maxRows must be a positive integer, got ${maxRows}`);
  const chunks: ScoringBatch['chunks'] = [];
  for (let start = 0; start < rows.length; start += maxRows) {
    chunks.push({ start, assembled: assembleBatch(config, rows.slice(start, start + maxRows), padId) });
  }
  const seqLen = Math.max(...chunks.map((c) => c.assembled.batch.text));
  const lossMask = new Float32Array(rows.length * seqLen);
  for (const c of chunks) spread(c.assembled.lossMask, c.assembled.batch.text, lossMask, seqLen, c.start);
  return { numSequences: rows.length, seqLen, lossMask, chunks };
}

/** Log-probs and entropy of every sequence, [N, T]. */
export async function scoreInChunks(session: TrainingSession, weights: Weights, sb: ScoringBatch): Promise<ForwardResult> {
  const out = emptyResult(sb);
  for (const c of sb.chunks) {
    const r = await session.forward(weights, c.assembled.patches, c.assembled.batch);
    place(r, c.assembled.batch.text, out, sb.seqLen, c.start);
  }
  return out;
}

/** The weight gradient of Σ grad · logprobs over all sequences (grad is [N, T]), summed over passes. */
export async function backwardInChunks(session: TrainingSession, weights: Weights, sb: ScoringBatch, grad: Float32Array): Promise<Map<string, Float32Array>> {
  if (grad.length !== sb.numSequences * sb.seqLen) throw new Error(`grad has ${grad.length} values, expected ${sb.numSequences}×${sb.seqLen}`);
  let grads: Map<string, Float32Array> | null = null;
  for (const c of sb.chunks) {
    const { batch: B, text: T } = c.assembled.batch;
    const chunkGrad = new Float32Array(B * T);
    for (let b = 0; b < B; b++) chunkGrad.set(grad.subarray((c.start + b) * sb.seqLen, (c.start + b) * sb.seqLen + T), b * T);
    const r = await session.backward(weights, c.assembled.patches, c.assembled.batch, chunkGrad);
    if (!grads) grads = r.grads;
    else for (const [name, g] of r.grads) addInto(grads.get(name)!, g);
  }
  return grads!;
}

function emptyResult(sb: ScoringBatch): ForwardResult {
  return { logprobs: new Float32Array(sb.numSequences * sb.seqLen), entropy: new Float32Array(sb.numSequences * sb.seqLen) };
}

function place(r: ForwardResult, fromLen: number, out: ForwardResult, toLen: number, startRow: number): void {
  spread(r.logprobs, fromLen, out.logprobs, toLen, startRow);
  spread(r.entropy, fromLen, out.entropy, toLen, startRow);
}

/** Copies rows of width `fromLen` into rows of width `toLen` ≥ fromLen, from row `startRow` on. */
function spread(from: Float32Array, fromLen: number, to: Float32Array, toLen: number, startRow: number): void {
  const rows = from.length / fromLen;
  for (let b = 0; b < rows; b++) to.set(from.subarray(b * fromLen, (b + 1) * fromLen), (startRow + b) * toLen);
}

function addInto(acc: Float32Array, g: Float32Array): void {
  for (let i = 0; i < acc.length; i++) acc[i] += g[i];
}
