// Batched generation over the two serving graphs: one vision pass for the whole batch, one prefill
// of [image | prompt], then one decoder step per new token reusing the KV cache.
//
// Layout of row b (prompts of different lengths share one batch by left-padding the text):
//   [ image (Np) | pad … pad | prompt (n_b) | generated … ]
// Positions skip the padding (image 0..Np−1, prompt Np..Np+n_b−1, then onwards), exactly as in the
// right-padded training batches, and padding keys are masked out of every attention.
//
// The KV cache lives in preallocated JS buffers (kv-slots.ts), fed whole as the decoder's past every
// step with the slots not yet written masked like padding. The decoder returns only the keys/values
// of the positions it was just fed, which are written into their slots. So a step moves
// [B, H, 1, Dh] per layer out of ORT instead of the whole grown cache (the former past+new outputs
// were copied into fresh JS buffers every step: ~8 MB per step at batch 16).
import type * as ortTypes from 'onnxruntime-node';
import { numPatches, patchDim, type ModelConfig } from '../engine/model/config.ts';
import { MASKED, newKeyValueNames, pastNames } from '../engine/model/serving-io.ts';
import { f32, i64, type Feed } from '../engine/ort/session.ts';
import { KvSlots } from './kv-slots.ts';
import { requestRng, sampleToken, type SamplingParams } from './sampling.ts';

/** Cache slots added per growth (see kv-slots.ts): a step reads at most this many masked slots. */
const CACHE_CHUNK = 16;

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
  const imageEmbeds = await encodeImages(
    s,
    rows.map((r) => r.patches),
  );
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
  const emptyPast = f32(new Float32Array(0), [B, heads, 0, headDim]);
  const kvOutputs = Array.from({ length: layers }, (_, l) => newKeyValueNames(l)).flatMap((n) => [n.key, n.value]);

  /** A pass over every key position [0, total) with nothing cached: the prefill, or a full recompute. */
  const fullFeed = (total: number): Feed => {
    const textLen = total - np;
    const ids = new BigInt64Array(B * textLen);
    const positions = new BigInt64Array(B * total);
    const bias = new Float32Array(B * total * total);
    for (let b = 0; b < B; b++) {
      for (let j = 0; j < textLen; j++) ids[b * textLen + j] = BigInt(text[b][j]);
      for (let q = 0; q < total; q++) {
        positions[b * total + q] = BigInt(positionOf(b, q));
        const row = (b * total + q) * total;
        for (let k = 0; k < total; k++) bias[row + k] = k > q || isPadKey(b, k) ? MASKED : 0;
      }
    }
    const feed: Feed = {
      ...s.decoderExtraFeed,
      image_embeds: imageEmbeds,
      input_ids: i64(ids, [B, textLen]),
      position_ids: i64(positions, [B, total]),
      attention_bias: f32(bias, [B, 1, total, total]),
    };
    for (let l = 0; l < layers; l++) {
      const n = pastNames(l);
      feed[n.key] = emptyPast;
      feed[n.value] = emptyPast;
    }
    return feed;
  };

  let total = np + L;
  let result = await s.decoder.run(fullFeed(total));

  // The cache: the last token generated is never fed, so at most Np + L + maxNew − 1 positions.
  const cache = new KvSlots({
    batch: B,
    heads,
    headDim,
    buffers: kvOutputs.length,
    maxSlots: np + L + Math.max(0, maxNew - 1),
    chunk: CACHE_CHUNK,
  });
  if (useCache) {
    for (let b = 0; b < B; b++) for (let k = np; k < np + padCount[b]; k++) cache.maskForever(b, k);
    cache.append(
      kvOutputs.map((name) => result[name].data as Float32Array),
      total,
    );
  }
  // One step's token inputs, reused every step: the tensors wrap these arrays, changed in place.
  const stepIds = new BigInt64Array(B);
  const stepPositions = new BigInt64Array(B);
  const stepFeed: Feed = {
    ...s.decoderExtraFeed,
    image_embeds: f32(new Float32Array(0), [B, 0, dim]),
    input_ids: i64(stepIds, [B, 1]),
    position_ids: i64(stepPositions, [B, 1]),
  };

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
      // Feed key position total−1; slots [0, total−1) are cached.
      const slot = total - 1;
      for (let b = 0; b < B; b++) {
        stepIds[b] = BigInt(text[b][slot - np]);
        stepPositions[b] = BigInt(positionOf(b, slot));
      }
      stepFeed.attention_bias = cache.stepBias();
      for (let l = 0; l < layers; l++) {
        const n = pastNames(l);
        stepFeed[n.key] = cache.past(2 * l);
        stepFeed[n.value] = cache.past(2 * l + 1);
      }
      result = await s.decoder.run(stepFeed);
      cache.append(
        kvOutputs.map((name) => result[name].data as Float32Array),
        1,
      );
    } else {
      result = await s.decoder.run(fullFeed(total));
    }
  }
  return { rows: out, visionMs: t1 - t0, decodeMs: performance.now() - t1 };
}
