// Batched generation over Qwen2-VL's three serving graphs: one vision pass for every image of the
// batch, one embed + prefill of the left-padded prompts, then one decoder step per new token.
//
// Row b of the batch:  [ pad … pad | its prompt (image tokens inside) | generated … ]
// Positions come from get_rope_index over the row's own tokens (rope-index.ts); padding is 0 in the
// attention mask, so no row ever attends to it, and a token at cache index i sits at position
// i + rope_delta_b. Each row therefore computes what it computes alone; only the matmul shapes
// differ, which can move logits in the last float32 bits, never a greedy choice above that noise.
//
// The KV cache lives in JS buffers (kv-slots.ts) fed whole as the decoder's past, its unwritten
// slots 0 in the attention mask; the decoder (present = 'new') returns only the fed positions'
// keys and values, so a step moves [B, kv, 1, hd] per layer out of ORT, not the grown cache.
import type * as ortTypes from 'onnxruntime-node';
import type { Qwen2VLConfig } from '../../engine/architectures/qwen2-vl/config.ts';
import { pastKeyValueNames, presentNames } from '../../engine/architectures/qwen2-vl/graphs.ts';
import { batchRopeIndex, decodePosition, type GridThw } from '../../engine/architectures/qwen2-vl/rope-index.ts';
import { f32, i64, type Feed } from '../../engine/ort/session.ts';
import { KvSlots } from '../kv-slots.ts';
import { requestRng, sampleToken, type SamplingParams } from '../sampling.ts';

const CACHE_CHUNK = 16;

export interface Qwen2VlServingSessions {
  config: Qwen2VLConfig;
  vision: ortTypes.InferenceSession;
  embed: ortTypes.InferenceSession;
  /** Built with logits 'last' and present 'new'. */
  decoder: ortTypes.InferenceSession;
  /** Fed on every vision / decoder run besides the data: a LoRA adapter's A and B when the graphs take them as inputs. */
  visionFeed?: Feed;
  decoderFeed?: Feed;
  /** Fed on every embed run: the table, when the graphs take the weights as inputs (a policy being fully fine-tuned). */
  embedFeed?: Feed;
}

export interface Qwen2VlRow {
  /** Prompt ids with each image's tokens already expanded. */
  promptIds: number[];
  /** pixel_values of the row's images, concatenated, and their grids in order. */
  pixelValues: Float32Array;
  grids: GridThw[];
  sampling: SamplingParams;
  maxTokens: number;
  seed?: number;
}

export interface Qwen2VlGenerated {
  tokens: number[];
  finishReason: 'stop' | 'length';
}

export interface Qwen2VlGenerateOptions {
  stopIds: readonly number[];
  padId: number;
}

export interface Qwen2VlGenerateOutput {
  rows: Qwen2VlGenerated[];
  visionMs: number;
  decodeMs: number;
}

/** Every image of the batch in one vision pass → each row's image features, in row order. */
async function encodeRows(s: Qwen2VlServingSessions, rows: readonly Qwen2VlRow[]): Promise<Float32Array[]> {
  const c = s.config;
  const grids = rows.flatMap((r) => r.grids);
  if (grids.length === 0) return rows.map(() => new Float32Array(0));
  const total = rows.reduce((n, r) => n + r.pixelValues.length, 0);
  const pixels = new Float32Array(total);
  let at = 0;
  for (const r of rows) {
    pixels.set(r.pixelValues, at);
    at += r.pixelValues.length;
  }
  const out = await s.vision.run({
    ...s.visionFeed,
    pixel_values: f32(pixels, [total / c.vision.patchDim, c.vision.patchDim]),
    grid_thw: i64(grids.flat(), [grids.length, 3]),
  });
  const features = out.image_features!.data as Float32Array;
  const H = c.text.hiddenSize;
  const m2 = c.vision.spatialMergeSize ** 2;
  const perRow: Float32Array[] = [];
  let from = 0;
  for (const r of rows) {
    const tokens = r.grids.reduce((n, [t, h, w]) => n + (t * h * w) / m2, 0);
    perRow.push(features.subarray(from * H, (from + tokens) * H));
    from += tokens;
  }
  return perRow;
}

export async function generateQwen2Vl(s: Qwen2VlServingSessions, rows: Qwen2VlRow[], opts: Qwen2VlGenerateOptions): Promise<Qwen2VlGenerateOutput> {
  const c = s.config;
  const { hiddenSize: H, numLayers, numKvHeads, headDim, vocabSize: V, maxPositionEmbeddings } = c.text;
  const B = rows.length;
  const stop = new Set(opts.stopIds);
  for (const [b, r] of rows.entries()) {
    if (r.promptIds.length < 1) throw new Error(`row ${b}: empty prompt`);
    if (r.promptIds.length + r.maxTokens > maxPositionEmbeddings) {
      throw new Error(`row ${b}: ${r.promptIds.length} prompt + ${r.maxTokens} new tokens exceed ${maxPositionEmbeddings} positions`);
    }
  }

  const t0 = performance.now();
  const features = await encodeRows(s, rows);
  const t1 = performance.now();

  // Prefill: left-padded ids → embeddings, image rows replaced by the row's image features.
  const layout = batchRopeIndex(
    rows.map((r) => r.promptIds),
    rows.map((r) => r.grids),
    {
      imageTokenId: c.tokens.imageTokenId,
      visionStartTokenId: c.tokens.visionStartTokenId,
      spatialMergeSize: c.vision.spatialMergeSize,
    },
  );
  const L = layout.length;
  const ids = new BigInt64Array(B * L).fill(BigInt(opts.padId));
  rows.forEach((r, b) => r.promptIds.forEach((id, k) => (ids[b * L + layout.padding[b]! + k] = BigInt(id))));
  const embeds = (await s.embed.run({ ...s.embedFeed, input_ids: i64(ids, [B, L]) })).inputs_embeds!.data as Float32Array;
  rows.forEach((r, b) => {
    let k = 0;
    const f = features[b]!;
    r.promptIds.forEach((id, j) => {
      if (id !== c.tokens.imageTokenId) return;
      embeds.set(f.subarray(k * H, (k + 1) * H), (b * L + layout.padding[b]! + j) * H);
      k++;
    });
    if (k * H !== f.length) throw new Error(`row ${b}: ${k} image tokens in the prompt, ${f.length / H} image features`);
  });

  const emptyPast = f32(new Float32Array(0), [B, numKvHeads, 0, headDim]);
  const presentOrder = Array.from({ length: numLayers }, (_, l) => presentNames(l)).flatMap((n) => [n.key, n.value]);
  const prefillFeed: Feed = {
    ...s.decoderFeed,
    inputs_embeds: f32(embeds, [B, L, H]),
    attention_mask: i64(layout.attentionMask, [B, L]),
    position_ids: i64(layout.positionIds, [3, B, L]),
  };
  for (let l = 0; l < numLayers; l++) {
    const n = pastKeyValueNames(l);
    prefillFeed[n.key] = emptyPast;
    prefillFeed[n.value] = emptyPast;
  }
  let result = await s.decoder.run(prefillFeed);

  const maxNew = Math.max(...rows.map((r) => r.maxTokens));
  const cache = new KvSlots({ batch: B, heads: numKvHeads, headDim, buffers: 2 * numLayers, maxSlots: L + Math.max(0, maxNew - 1), chunk: CACHE_CHUNK });
  cache.append(
    presentOrder.map((name) => result[name]!.data as Float32Array),
    L,
  );

  const rand = rows.map((r) => requestRng(r.seed));
  const out: Qwen2VlGenerated[] = rows.map(() => ({ tokens: [], finishReason: 'length' }));
  const done = rows.map((r) => r.maxTokens <= 0);
  const stepIds = new BigInt64Array(B);
  const stepPositions = new BigInt64Array(3 * B);

  for (let step = 0; step < maxNew && !done.every(Boolean); step++) {
    const logits = result.logits!.data as Float32Array; // [B, 1, V]
    for (let b = 0; b < B; b++) {
      let next = opts.padId;
      if (!done[b]) {
        next = sampleToken(logits, b * V, V, rows[b]!.sampling, rand[b]!);
        out[b]!.tokens.push(next);
        if (stop.has(next)) {
          done[b] = true;
          out[b]!.finishReason = 'stop';
        } else if (out[b]!.tokens.length >= rows[b]!.maxTokens) done[b] = true;
      }
      stepIds[b] = BigInt(next);
    }
    if (done.every(Boolean)) break;
    // The token fed now is written at cache index cache.length.
    for (let b = 0; b < B; b++) {
      const position = BigInt(decodePosition(cache.length, layout.ropeDeltas[b]!));
      for (let axis = 0; axis < 3; axis++) stepPositions[axis * B + b] = position;
    }
    const stepEmbeds = (await s.embed.run({ ...s.embedFeed, input_ids: i64(stepIds, [B, 1]) })).inputs_embeds!.data as Float32Array;
    // Grows the buffers first when full, so past(i) and cap below describe this step.
    cache.reserve(1);
    const mask = new BigInt64Array(B * (cache.cap + 1));
    for (let b = 0; b < B; b++) {
      const row = b * (cache.cap + 1);
      mask.fill(1n, row + layout.padding[b]!, row + cache.length);
      mask[row + cache.cap] = 1n; // the fed token itself
    }
    const feed: Feed = {
      ...s.decoderFeed,
      inputs_embeds: f32(stepEmbeds, [B, 1, H]),
      attention_mask: i64(mask, [B, cache.cap + 1]),
      position_ids: i64(stepPositions, [3, B, 1]),
    };
    for (let l = 0; l < numLayers; l++) {
      const n = pastKeyValueNames(l);
      feed[n.key] = cache.past(2 * l);
      feed[n.value] = cache.past(2 * l + 1);
    }
    result = await s.decoder.run(feed);
    cache.append(
      presentOrder.map((name) => result[name]!.data as Float32Array),
      1,
    );
  }
  return { rows: out, visionMs: t1 - t0, decodeMs: performance.now() - t1 };
}
