// Choosing the next token from one row of logits: greedy at temperature 0, otherwise softmax at
// the temperature restricted to the smallest set of tokens whose probability reaches top_p
// (nucleus sampling). Randomness comes from a per-request seeded generator, so the same seed gives
// the same answer whatever else shares the batch.
import { rng } from '../engine/random.ts';

export interface SamplingParams {
  temperature: number;
  topP: number;
}

export function argmax(logits: ArrayLike<number>, from = 0, to = logits.length): number {
  let best = from;
  for (let i = from + 1; i < to; i++) if (logits[i] > logits[best]) best = i;
  return best - from;
}

/** A generator for one request: seeded when the client gave a seed, otherwise fresh. */
export function requestRng(seed: number | undefined): () => number {
  return rng(seed ?? Math.floor(Math.random() * 2 ** 32));
}

/** Picks a token id from `logits[from, from + vocab)`. */
export function sampleToken(logits: ArrayLike<number>, from: number, vocab: number, p: SamplingParams, rand: () => number): number {
  if (!(p.temperature > 0)) return argmax(logits, from, from + vocab);
  let max = -Infinity;
  for (let i = 0; i < vocab; i++) max = Math.max(max, logits[from + i]);
  const probs = new Float64Array(vocab);
  let total = 0;
  for (let i = 0; i < vocab; i++) {
    probs[i] = Math.exp((logits[from + i] - max) / p.temperature);
    total += probs[i];
  }
  const order = Array.from({ length: vocab }, (_, i) => i);
  let candidates = order;
  if (p.topP < 1) {
    order.sort((a, b) => probs[b] - probs[a] || a - b);
    let cum = 0;
    let keep = 0;
    while (keep < vocab && cum < p.topP * total) cum += probs[order[keep++]];
    candidates = order.slice(0, Math.max(1, keep));
    total = cum;
  }
  let u = rand() * total;
  for (const i of candidates) {
    u -= probs[i];
    if (u <= 0) return i;
  }
  return candidates[candidates.length - 1];
}
