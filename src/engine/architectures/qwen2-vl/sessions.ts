// Running the serving graphs: the image features put into the token embeddings, prefill and greedy
// KV-cache steps. What the reference check, the benchmark and the tests share; the server's batched
// runtime builds on the same graphs.
import type * as ortTypes from 'onnxruntime-node';
import { f32, i64, openSession, type Feed, type SessionOptions } from '../../ort/session.ts';
import { serializeGraph } from '../../graph/serialize.ts';
import type { Qwen2VLConfig } from './config.ts';
import { pastKeyValueNames, presentNames, type Qwen2VLServingGraphs } from './graphs.ts';

export interface Qwen2VLSessions {
  config: Qwen2VLConfig;
  vision: ortTypes.InferenceSession;
  embed: ortTypes.InferenceSession;
  decoder: ortTypes.InferenceSession;
}

/** Opens in-memory graphs (small models); large ones open from files written by writeQwen2VLServingGraphs. */
export async function openQwen2VLSessions(
  config: Qwen2VLConfig,
  graphs: Qwen2VLServingGraphs | { vision: string; embed: string; decoder: string },
  opts: SessionOptions = {},
): Promise<Qwen2VLSessions> {
  const src = (x: Qwen2VLServingGraphs[keyof Qwen2VLServingGraphs] | string) => (typeof x === 'string' ? x : serializeGraph(x));
  const [vision, embed, decoder] = await Promise.all([
    openSession(src(graphs.vision), opts),
    openSession(src(graphs.embed), opts),
    openSession(src(graphs.decoder), opts),
  ]);
  return { config, vision: vision.session, embed: embed.session, decoder: decoder.session };
}

/** pixel_values [N, patchDim] + grid_thw [[t, h, w], ...] → image features [N / m², hidden] (flat). */
export async function encodeImages(
  s: Qwen2VLSessions,
  pixelValues: Float32Array,
  gridThw: readonly (readonly number[])[],
  extraOutputs: string[] = [],
): Promise<{ features: Float32Array; outputs: Record<string, ortTypes.Tensor> }> {
  const v = s.config.vision;
  const N = pixelValues.length / v.patchDim;
  const expected = gridThw.reduce((n, [t, h, w]) => n + t * h * w, 0);
  if (!Number.isInteger(N) || N !== expected) {
    throw new Error(`pixel_values hold ${pixelValues.length / v.patchDim} patches; grid_thw ${JSON.stringify(gridThw)} needs ${expected}`);
  }
  const m = v.spatialMergeSize;
  for (const [, h, w] of gridThw) {
    if (h % m !== 0 || w % m !== 0) throw new Error(`grid_thw ${JSON.stringify(gridThw)}: h and w must be multiples of ${m}`);
  }
  const out = await s.vision.run({ pixel_values: f32(pixelValues, [N, v.patchDim]), grid_thw: i64(gridThw.flat(), [gridThw.length, 3]) }, [
    'image_features',
    ...extraOutputs,
  ]);
  return { features: out.image_features.data as Float32Array, outputs: out };
}

/** input_ids [B, S] → inputs_embeds [B, S, H] (flat). */
export async function embedIds(s: Qwen2VLSessions, ids: readonly number[], batch = 1): Promise<Float32Array> {
  const out = await s.embed.run({ input_ids: i64(ids, [batch, ids.length / batch]) });
  return out.inputs_embeds.data as Float32Array;
}

/** Rows whose id is the image token take the image features, in order (modifies `embeds`). */
export function mergeImageFeatures(embeds: Float32Array, ids: readonly number[], features: Float32Array, c: Qwen2VLConfig): Float32Array {
  const H = c.text.hiddenSize;
  const slots = ids.reduce((n, id) => n + (id === c.tokens.imageTokenId ? 1 : 0), 0);
  if (slots * H !== features.length) {
    throw new Error(`the prompt has ${slots} image tokens but the images give ${features.length / H} features`);
  }
  let k = 0;
  ids.forEach((id, i) => {
    if (id === c.tokens.imageTokenId) embeds.set(features.subarray(k * H, ++k * H), i * H);
  });
  return embeds;
}

export interface DecoderStep {
  logits: ortTypes.Tensor;
  outputs: Record<string, ortTypes.Tensor>;
  /** present.{i}.key/value, in layer order (key, value, key, value, ...). */
  presents: ortTypes.Tensor[];
}

/**
 * One decoder pass (batch 1 or more): `embeds` [B, S, H], positions [3][B·S] flattened per row,
 * `past` (key, value per layer; empty → a zero-length cache), attention mask all ones.
 */
export async function decoderPass(
  s: Qwen2VLSessions,
  embeds: Float32Array,
  batch: number,
  positions: readonly (readonly number[])[],
  past: ortTypes.Tensor[] | null,
  extraOutputs: string[] = [],
): Promise<DecoderStep> {
  const t = s.config.text;
  const S = embeds.length / (batch * t.hiddenSize);
  const P = past ? (past[0].dims[2] as number) : 0;
  const feed: Feed = {
    inputs_embeds: f32(embeds, [batch, S, t.hiddenSize]),
    attention_mask: i64(new Array(batch * (P + S)).fill(1), [batch, P + S]),
    position_ids: i64(positions.flat(), [3, batch, S]),
  };
  for (let l = 0; l < t.numLayers; l++) {
    const n = pastKeyValueNames(l);
    feed[n.key] = past ? past[2 * l] : f32(new Float32Array(0), [batch, t.numKvHeads, 0, t.headDim]);
    feed[n.value] = past ? past[2 * l + 1] : f32(new Float32Array(0), [batch, t.numKvHeads, 0, t.headDim]);
  }
  const names = ['logits', ...extraOutputs];
  for (let l = 0; l < t.numLayers; l++) names.push(presentNames(l).key, presentNames(l).value);
  const out = await s.decoder.run(feed, names);
  const presents: ortTypes.Tensor[] = [];
  for (let l = 0; l < t.numLayers; l++) presents.push(out[presentNames(l).key], out[presentNames(l).value]);
  return { logits: out.logits, outputs: out, presents };
}

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

export interface GreedyResult {
  ids: number[];
  /** [steps, vocab]: row s = the logits that chose ids[s]. */
  stepLogits: Float32Array;
  prefill: DecoderStep;
}

/**
 * Greedy decoding of one prompt (batch 1) with a decoder built with present = 'full' (past + new):
 * prefill with the given M-RoPE positions, then `steps − 1` cached steps, the token at cache index i
 * at position i + ropeDelta on all three rows.
 */
export async function greedyDecode(
  s: Qwen2VLSessions,
  inputsEmbeds: Float32Array,
  positionIds: readonly (readonly number[])[],
  ropeDelta: number,
  steps: number,
  extraOutputs: string[] = [],
): Promise<GreedyResult> {
  const t = s.config.text;
  const V = t.vocabSize;
  const L = positionIds[0].length;
  const prefill = await decoderPass(s, inputsEmbeds, 1, positionIds, null, extraOutputs);
  const all = prefill.logits.data as Float32Array;
  const rows = all.length / V;
  const stepLogits = new Float32Array(steps * V);
  stepLogits.set(all.subarray((rows - 1) * V, rows * V), 0);
  const ids = [argmax(stepLogits.subarray(0, V))];
  let past = prefill.presents;
  for (let step = 1; step < steps; step++) {
    const index = L + step - 1;
    const pos = index + ropeDelta;
    const emb = await embedIds(s, [ids[step - 1]]);
    const r = await decoderPass(s, emb, 1, [[pos], [pos], [pos]], past);
    const logits = r.logits.data as Float32Array;
    stepLogits.set(logits.subarray(logits.length - V), step * V);
    ids.push(argmax(stepLogits.subarray(step * V, (step + 1) * V)));
    past = r.presents;
  }
  return { ids, stepLogits, prefill };
}
