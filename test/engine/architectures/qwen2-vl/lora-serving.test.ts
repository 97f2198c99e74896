// Serving a LoRA adapter on Qwen2-VL: merged into the weights, baked unmerged on its base, or fed as
// inputs to one base session, the vision features and logits agree (≤ 1e-5), and differ from the
// base alone (so the comparison means something).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildDecoderGraph, buildVisionEncoderGraph, type ServingLora } from '../../../../src/engine/architectures/qwen2-vl/graphs.ts';
import { qwen2VLLoraTargets } from '../../../../src/engine/architectures/qwen2-vl/training.ts';
import { serializeGraph } from '../../../../src/engine/graph/serialize.ts';
import { parseLoraConfig } from '../../../../src/engine/lora/config.ts';
import { adapterInputShapes } from '../../../../src/engine/lora/graph.ts';
import { initLoraWeights } from '../../../../src/engine/lora/init.ts';
import { mergeLora } from '../../../../src/engine/lora/merge.ts';
import { f32, i64, openSession, type Feed } from '../../../../src/engine/ort/session.ts';
import type { Graph } from '../../../../src/engine/graph/builder.ts';
import { tinyTrainBatch, tinyTrainConfig, tinyTrainWeights } from '../../../support/qwen2-vl-train.ts';

const c = tinyTrainConfig();
// Weights of the scale a trained model has (logits of order 1), where float32 rounding stays under the bound.
const base = tinyTrainWeights(c, 31, 0.15);
const batch = tinyTrainBatch(c);
const config = parseLoraConfig({
  r: 3,
  lora_alpha: 6,
  init_lora_weights: false,
  target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'qkv', 'proj', 'fc1', 'fc2', 'mlp.0', 'mlp.2', 'lm_head'],
});
const targets = qwen2VLLoraTargets(c, config);
const adapter = initLoraWeights(targets, config, 8);

async function run(g: Graph, feed: Feed, output: string): Promise<Float32Array> {
  const { session } = await openSession(serializeGraph(g));
  const out = await session.run(feed, [output]);
  await session.release();
  return out[output]!.data as Float32Array;
}

const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

function adapterFeed(part: 'vision' | 'text'): Feed {
  const feed: Feed = {};
  for (const t of targets.filter((x) => x.module.startsWith('visual.') === (part === 'vision'))) {
    const s = adapterInputShapes(t, config.r);
    feed[t.aName] = f32(adapter.get(t.aName)!, s.a);
    feed[t.bName] = f32(adapter.get(t.bName)!, s.b);
  }
  return feed;
}

test('Qwen2-VL LoRA: merged weights = adapter baked on its base = adapter fed to a base session (vision and decoder, ≤ 1e-5)', async () => {
  const merged = mergeLora(base, targets, adapter, config);
  const baked: ServingLora = { config, targets, mode: { kind: 'initializers', weights: adapter } };
  const fed: ServingLora = { config, targets, mode: { kind: 'inputs' } };

  const visionFeed: Feed = { pixel_values: f32(batch.pixelValues, [batch.numPatches, c.vision.patchDim]), grid_thw: i64(batch.gridThw, [2, 3]) };
  const vMerged = await run(buildVisionEncoderGraph(c, { kind: 'arrays', weights: merged }), visionFeed, 'image_features');
  const vBaked = await run(buildVisionEncoderGraph(c, { kind: 'arrays', weights: base }, { lora: baked }), visionFeed, 'image_features');
  const vFed = await run(
    buildVisionEncoderGraph(c, { kind: 'arrays', weights: base }, { lora: fed }),
    { ...visionFeed, ...adapterFeed('vision') },
    'image_features',
  );
  const vBase = await run(buildVisionEncoderGraph(c, { kind: 'arrays', weights: base }), visionFeed, 'image_features');
  assert.ok(maxAbs(vMerged, vBaked) <= 1e-5, `vision merged vs baked ${maxAbs(vMerged, vBaked)}`);
  assert.ok(maxAbs(vMerged, vFed) <= 1e-5, `vision merged vs fed ${maxAbs(vMerged, vFed)}`);
  assert.ok(maxAbs(vMerged, vBase) > 1e-2, 'the adapter changes the vision features');

  const H = c.text.hiddenSize;
  const S = batch.S;
  const embeds = Float32Array.from({ length: 2 * S * H }, (_, i) => Math.sin(i * 0.37));
  const decoderFeed: Feed = {
    inputs_embeds: f32(embeds, [2, S, H]),
    attention_mask: i64(batch.attentionMask, [2, S]),
    position_ids: i64(batch.positionIds, [3, 2, S]),
  };
  for (let l = 0; l < c.text.numLayers; l++) {
    const empty = f32(new Float32Array(0), [2, c.text.numKvHeads, 0, c.text.headDim]);
    decoderFeed[`past_key_values.${l}.key`] = empty;
    decoderFeed[`past_key_values.${l}.value`] = empty;
  }
  const dMerged = await run(buildDecoderGraph(c, { kind: 'arrays', weights: merged }), decoderFeed, 'logits');
  const dBaked = await run(buildDecoderGraph(c, { kind: 'arrays', weights: base }, { lora: baked }), decoderFeed, 'logits');
  const dFed = await run(buildDecoderGraph(c, { kind: 'arrays', weights: base }, { lora: fed }), { ...decoderFeed, ...adapterFeed('text') }, 'logits');
  const dBase = await run(buildDecoderGraph(c, { kind: 'arrays', weights: base }), decoderFeed, 'logits');
  assert.ok(maxAbs(dMerged, dBaked) <= 1e-5, `decoder merged vs baked ${maxAbs(dMerged, dBaked)}`);
  assert.ok(maxAbs(dMerged, dFed) <= 1e-5, `decoder merged vs fed ${maxAbs(dMerged, dFed)}`);
  assert.ok(maxAbs(dMerged, dBase) > 1e-2, 'the adapter changes the logits');
});
