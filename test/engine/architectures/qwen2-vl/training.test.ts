// Qwen2-VL's training graph: the same definition as serving (its log-probs equal the serving graphs'
// on each row alone), and its gradients, full and LoRA, against central differences in float64 on a
// tiny config with two text layers, GQA and two images of different sizes in one left-padded batch.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Graph, Value } from '../../../../src/engine/graph/builder.ts';
import * as o from '../../../../src/engine/graph/ops.ts';
import { serializeGraph } from '../../../../src/engine/graph/serialize.ts';
import { gradCheck, type CheckFeed } from '../../../../src/engine/autodiff/grad-check.ts';
import { lowerErfForFloat64 } from '../../../../src/engine/autodiff/erf-float64.ts';
import { buildQwen2VLServingGraphs } from '../../../../src/engine/architectures/qwen2-vl/graphs.ts';
import { decoderPass, embedIds, encodeImages, mergeImageFeatures, openQwen2VLSessions } from '../../../../src/engine/architectures/qwen2-vl/sessions.ts';
import { buildQwen2VLForwardOn, buildQwen2VLTrainingGraph, qwen2VLLoraTargets } from '../../../../src/engine/architectures/qwen2-vl/training.ts';
import { qwen2VLParamTable } from '../../../../src/engine/architectures/qwen2-vl/params.ts';
import { parseLoraConfig } from '../../../../src/engine/lora/config.ts';
import { initLoraWeights } from '../../../../src/engine/lora/init.ts';
import { adapterInputShapes, DROPOUT_SEED_INPUT } from '../../../../src/engine/lora/graph.ts';
import { openSession, f32, i64, type Feed } from '../../../../src/engine/ort/session.ts';
import { tinyTrainBatch, tinyTrainConfig, tinyTrainWeights, type TinyBatch } from '../../../support/qwen2-vl-train.ts';

const c = tinyTrainConfig();
const batch = tinyTrainBatch(c);
const weights = tinyTrainWeights(c, 11);

function batchFeeds64(b: TinyBatch): Record<string, CheckFeed> {
  return {
    input_ids: { dtype: 'int64', data: b.inputIds, dims: [b.B, b.S] },
    targets: { dtype: 'int64', data: b.targets, dims: [b.B, b.S] },
    attention_mask: { dtype: 'int64', data: b.attentionMask, dims: [b.B, b.S] },
    position_ids: { dtype: 'int64', data: b.positionIds, dims: [3, b.B, b.S] },
    pixel_values: { dtype: 'float64', data: Float64Array.from(b.pixelValues), dims: [b.numPatches, c.vision.patchDim] },
    grid_thw: { dtype: 'int64', data: b.gridThw, dims: [b.gridThw.length / 3, 3] },
    image_mask: { dtype: 'int64', data: b.imageMask, dims: [b.B, b.S] },
  };
}

function weightFeeds64(): Record<string, CheckFeed> {
  const out: Record<string, CheckFeed> = {};
  for (const p of qwen2VLParamTable(c)) out[p.name] = { dtype: 'float64', data: Float64Array.from(weights.get(p.name)!), dims: p.shape };
  return out;
}

// A padded position's query sees no key: its scores are all −1e30, whose float64 sum with a score
// loses the score, so finite differences there read 0 while the analytic gradient does not. Training
// gives those positions zero weight; so does the checked output.
function realPositions(g: Graph, logprobs: Value): Value {
  const mask = g.inputs.find((v) => v.name === 'attention_mask')!;
  return o.mul(logprobs, o.cast(mask, g.floatType));
}

test('training log-probs equal the serving graphs run on each row alone (same definition)', async () => {
  const tg = buildQwen2VLTrainingGraph(c, { trainable: { kind: 'full' }, withGrads: false });
  const { session } = await openSession(serializeGraph(tg.graph));
  const feed: Feed = {
    input_ids: i64(batch.inputIds, [batch.B, batch.S]),
    targets: i64(batch.targets, [batch.B, batch.S]),
    attention_mask: i64(batch.attentionMask, [batch.B, batch.S]),
    position_ids: i64(batch.positionIds, [3, batch.B, batch.S]),
    pixel_values: f32(batch.pixelValues, [batch.numPatches, c.vision.patchDim]),
    grid_thw: i64(batch.gridThw, [2, 3]),
    image_mask: i64(batch.imageMask, [batch.B, batch.S]),
  };
  for (const p of qwen2VLParamTable(c)) feed[p.name] = f32(weights.get(p.name)!, p.shape);
  const out = await session.run(feed);
  await session.release();
  const logprobs = out.logprobs.data as Float32Array;

  const serving = await openQwen2VLSessions(c, buildQwen2VLServingGraphs(c, { kind: 'arrays', weights }));
  const grids = [
    [1, 4, 4],
    [1, 2, 4],
  ];
  let patchStart = 0;
  let compared = 0;
  for (let b = 0; b < batch.B; b++) {
    const [t, h, w] = grids[b]!;
    const patches = t * h * w;
    const pixels = batch.pixelValues.subarray(patchStart * c.vision.patchDim, (patchStart + patches) * c.vision.patchDim);
    patchStart += patches;
    const pad = [...batch.attentionMask.subarray(b * batch.S, (b + 1) * batch.S)].filter((m) => m === 0n).length;
    const ids = [...batch.inputIds.subarray(b * batch.S + pad, (b + 1) * batch.S)].map(Number);
    const n = ids.length;
    const positions = [0, 1, 2].map((axis) =>
      [...batch.positionIds.subarray((axis * batch.B + b) * batch.S + pad, (axis * batch.B + b + 1) * batch.S)].map(Number),
    );
    const { features } = await encodeImages(serving, pixels, [[t, h, w]]);
    const embeds = mergeImageFeatures(await embedIds(serving, ids), ids, features, c);
    const step = await decoderPass(serving, embeds, 1, positions, null);
    const logits = step.logits.data as Float32Array;
    const V = c.text.vocabSize;
    for (let k = 0; k < n; k++) {
      const row = logits.subarray(k * V, (k + 1) * V);
      const max = Math.max(...row);
      const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
      const target = Number(batch.targets[b * batch.S + pad + k]);
      const want = row[target]! - lse;
      const got = logprobs[b * batch.S + pad + k]!;
      assert.ok(Math.abs(want - got) <= 2e-5, `row ${b} position ${k}: serving ${want}, training ${got}`);
      compared++;
    }
  }
  await Promise.all([serving.vision.release(), serving.embed.release(), serving.decoder.release()]);
  assert.equal(
    compared,
    batch.attentionMask.reduce((s, m) => s + Number(m), 0),
  );
});

test('full fine-tuning: every weight gradient matches central differences (float64, two images of two sizes, left padding)', async () => {
  const feeds = { ...batchFeeds64(batch), ...weightFeeds64() };
  const r = await gradCheck(
    (g) => {
      const f = buildQwen2VLForwardOn(g, c, { trainable: { kind: 'full' }, dropout: false });
      return { output: realPositions(g, f.logprobs), wrt: [...f.trainable.values()] };
    },
    feeds,
    { samplesPerInput: 3, step: 1e-5, lower: lowerErfForFloat64 },
  );
  const tensors = qwen2VLParamTable(c).length;
  console.log(`qwen2_vl full gradient check: ${r.checked} elements over ${tensors} tensors, worst relative error ${r.maxRelError.toExponential(2)}`);
  assert.ok(r.checked >= tensors * 2, `checked ${r.checked} of ${tensors} tensors`);
  assert.ok(r.maxRelError <= 1e-4, `worst ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
});

test('LoRA: A and B of every adapted module (text, vision, merger, patch embed, lm_head) match central differences, dropout on', async () => {
  const config = parseLoraConfig({
    r: 2,
    lora_alpha: 6,
    lora_dropout: 0.25,
    init_lora_weights: false,
    target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj', 'qkv', 'proj', 'fc1', 'fc2', 'mlp.0', 'mlp.2', 'lm_head'],
  });
  const targets = qwen2VLLoraTargets(c, config);
  assert.ok(
    targets.some((t) => t.kind === 'conv'),
    'the patch embed is adapted',
  );
  assert.ok(targets.some((t) => t.module === 'lm_head'));
  const adapter = initLoraWeights(targets, config, 3);
  const feeds: Record<string, CheckFeed> = { ...batchFeeds64(batch), ...weightFeeds64() };
  for (const t of targets) {
    const s = adapterInputShapes(t, config.r);
    feeds[t.aName] = { dtype: 'float64', data: Float64Array.from(adapter.get(t.aName)!), dims: s.a };
    feeds[t.bName] = { dtype: 'float64', data: Float64Array.from(adapter.get(t.bName)!), dims: s.b };
  }
  feeds[DROPOUT_SEED_INPUT] = { dtype: 'int64', data: BigInt64Array.of(12345n), dims: [] };
  const r = await gradCheck(
    (g) => {
      const f = buildQwen2VLForwardOn(g, c, { trainable: { kind: 'lora', config, targets }, dropout: true });
      assert.equal(f.trainable.size, 2 * targets.length);
      return { output: realPositions(g, f.logprobs), wrt: [...f.trainable.values()] };
    },
    feeds,
    { samplesPerInput: 2, step: 1e-5, lower: lowerErfForFloat64 },
  );
  console.log(`qwen2_vl LoRA gradient check: ${r.checked} elements, worst relative error ${r.maxRelError.toExponential(2)}`);
  assert.ok(r.checked >= targets.length * 4, `checked ${r.checked}`);
  assert.ok(r.maxRelError <= 1e-4, `worst ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
});

test('LoRA training graph: gradients only for A and B, none for the frozen base', () => {
  const config = parseLoraConfig({ r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'] });
  const targets = qwen2VLLoraTargets(c, config);
  const tg = buildQwen2VLTrainingGraph(c, { trainable: { kind: 'lora', config, targets }, withGrads: true });
  assert.deepEqual([...tg.outputs.grads.keys()].sort(), targets.flatMap((t) => [t.aName, t.bName]).sort());
  assert.equal(tg.dropoutSeed, false, 'lora_dropout 0 needs no seed input');
  assert.ok(
    tg.graph.inputs.some((v) => v.name === 'model.layers.0.self_attn.q_proj.weight'),
    'the base is fed',
  );
});
