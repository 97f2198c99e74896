// Batched generation over the two serving graphs: one vision pass for the whole batch, one prefill
// of [image | prompt], then one decoder step per new token reusing the KV cache.
//
// Layout of row b (prompts of different lengths share one batch by left-padding the text):
//   [ image (Np) | pad … pad | prompt (n_b) | generated … ]
// Positions skip the padding (image 0..Np−1, prompt Np..Np+n_b−1, then onwards), exactly as in the
// right-padded training batches, and padding keys are masked out of every attention.
import type * as ortTypes from 'onnxruntime-node';
import { numPatches, patchDim, type ModelConfig } from '../engine/model/config.ts';
import { MASKED } from '../engine/model/batch-inputs.ts';
import { pastNames, presentNames } from '../engine/model/vlm.ts';
import { f32, i64, type Feed } from '../engine/ort/session.ts';
import { requestRng, sampleToken, type SamplingParams } from './sampling.ts';

export interface ServingSessions {
  config: ModelConfig;
  vision: ortTypes.InferenceSession;
  decoder: ortTypes.InferenceSession;
  /** Fed to every run; holds the weights when the graphs take them as inputs (GRPO rollouts). */
  visionExtraFeed?: Feed;
  decoderExtraFeed?: Feed;
}

export interface GenerateRow {
  /** [Np × patchDim] */
  patches: Float32Array;
  promptIds: number[];
  sampling: SamplingParams;
  maxTokens: number;
  seed?: number;
}

export interface GeneratedRow {
  /** Generated ids, including the stop token when one ended the row. */
  tokens: number[];
  finishReason: 'stop' | 'length';
}

export interface GenerateOptions {
  /** Any of these ends a row (kept as its last token). */
  stopIds: readonly number[];
  padId: number;
  /** false = recompute the whole sequence each step (the reference the cache is checked against). */
  useCache?: boolean;
}

export interface GenerateOutput {
  rows: GeneratedRow[];
  visionMs: number;
  decodeMs: number;
}

/** Runs the vision encoder on a batch: [B, Np, D] image embeddings as an ORT tensor. */
export async function encodeImages(s: ServingSessions, patchesPerRow: Float32Array[]): Promise<ortTypes.Tensor> {
  const np = numPatches(s.config);
  const pd = patchDim(s.config);
  const all = new Float32Array(patchesPerRow.length * np * pd);
  patchesPerRow.forEach((p, b) => {
    if (p.length !== np * pd) throw new Error(`row ${b}: ${p.length} patch values, expected ${np * pd}`);
    all.set(p, b * np * pd);
  });
  const out = await s.vision.run({ ...s.visionExtraFeed, patches: f32(all, [patchesPerRow.length, np, pd]) });
  return out.image_embeds;
}

export async function generate(s: ServingSessions, rows: GenerateRow[], opts: GenerateOptions): Promise<GenerateOutput> {
  const c = s.config;
  const B = rows.length;
  const np = numPatches(c);
  const { heads, dim, layers, vocabSize: V, maxPositions } = c.text;
  const headDim = dim / heads;
  const useCache = opts.useCache ?? true;
  const stop = new Set(opts.stopIds);

  for (const [b, r] of rows.entries()) {
    if (r.promptIds.length < 1) throw new Error(`row ${b}: empty prompt`);
    if (np + r.promptIds.length + r.maxTokens > maxPositions) {
      throw new Error(`row ${b}: ${np} image + ${r.promptIds.length} prompt + ${r.maxTokens} new tokens exceed ${maxPositions} positions`);
    }
  }

  // 1. encode the images, all rows at once
  const t0 = performance.now();
  const imageEmbeds = await encodeImages(s, rows.map((r) => r.patches));
  const t1 = performance.now();

  // 2. prefill [image | left-padded prompt]
  const L = Math.max(...rows.map((r) => r.promptIds.length));
  const maxNew = Math.max(...rows.map((r) => r.maxTokens));
  const padCount = rows.map((r) => L - r.promptIds.length);
  const rand = rows.map((r) => requestRng(r.seed));
  const out: GeneratedRow[] = rows.map(() => ({ tokens: [], finishReason: 'length' }));
  const done = rows.map((r) => r.maxTokens <= 0);
  /** Text ids so far per row, padding included: what a full recompute feeds. */
  const text = rows.map((r, b) => [...new Array<number>(padCount[b]).fill(opts.padId), ...r.promptIds]);

  const isPadKey = (b: number, k: number) => k >= np && k < np + padCount[b];
  const positionOf = (b: number, k: number) => (k < np ? k : isPadKey(b, k) ? 0 : k - padCount[b]);

  /** Inputs of a pass over key positions [start, total) of every row, with earlier ones cached. */
  const passFeed = (start: number, total: number, past: ortTypes.Tensor[] | null): Feed => {
    const step = total - start;
    const ids = new BigInt64Array(B * (total - Math.max(start, np)));
    const positions = new BigInt64Array(B * step);
    const bias = new Float32Array(B * step * total);
    const textFrom = Math.max(start, np) - np;
    const textLen = total - np - textFrom;
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < textLen; j++) ids[b * textLen + j] = BigInt(text[b][textFrom + j]);
      for (let q = 0; q < step; q++) {
        const qAbs = start + q;
        positions[b * step + q] = BigInt(positionOf(b, qAbs));
        const row = (b * step + q) * total;
        for (let k = 0; k < total; k++) bias[row + k] = k > qAbs || isPadKey(b, k) ? MASKED : 0;
      }
    }
    const feed: Feed = {
      ...s.decoderExtraFeed,
      image_embeds: start === 0 ? imageEmbeds : f32(new Float32Array(0), [B, 0, dim]),
      input_ids: i64(ids, [B, textLen]),
      position_ids: i64(positions, [B, step]),
      attention_bias: f32(bias, [B, 1, step, total]),
    };
    for (let l = 0; l < layers; l++) {
      const n = pastNames(l);
      feed[n.key] = past ? past[2 * l] : f32(new Float32Array(0), [B, heads, 0, headDim]);
      feed[n.value] = past ? past[2 * l + 1] : f32(new Float32Array(0), [B, heads, 0, headDim]);
    }
    return feed;
  };
  const presentOutputs = Array.from({ length: layers }, (_, l) => presentNames(l)).flatMap((n) => [n.key, n.value]);

  let total = np + L;
  let result = await s.decoder.run(passFeed(0, total, null));
  // 3. one token per step for every unfinished row
  for (let step = 0; step < maxNew && !done.every(Boolean); step++) {
    const logits = result.logits.data as Float32Array;
    for (let b = 0; b < B; b++) {
      let next = opts.padId;
      if (!done[b]) {
        next = sampleToken(logits, b * V, V, rows[b].sampling, rand[b]);
        out[b].tokens.push(next);
        if (stop.has(next)) {
          done[b] = true;
          out[b].finishReason = 'stop';
        } else if (out[b].tokens.length >= rows[b].maxTokens) done[b] = true;
      }
      text[b].push(next);
    }
    if (done.every(Boolean)) break;
    total += 1;
    if (useCache) {
      const past = presentOutputs.map((name) => result[name]);
      result = await s.decoder.run(passFeed(total - 1, total, past));
    } else {
      result = await s.decoder.run(passFeed(0, total, null));
    }
  }
  return { rows: out, visionMs: t1 - t0, decodeMs: performance.now() - t1 };
}
