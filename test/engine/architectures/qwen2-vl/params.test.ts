// Weights as graph inputs in HF layout (what training will feed) give the baked serving results:
// the in-graph transposes of [out, in] linears and of the [E, C, T, P, P] patch embed are right.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildDecoderGraph, buildVisionEncoderGraph } from '../../../../src/engine/architectures/qwen2-vl/graphs.ts';
import { qwen2VLParamTable, transpose2d } from '../../../../src/engine/architectures/qwen2-vl/params.ts';
import { readQwen2VLFolderF32 } from '../../../../src/engine/architectures/qwen2-vl/weights.ts';
import { readSafetensors } from '../../../../src/engine/export/safetensors.ts';
import { serializeGraph } from '../../../../src/engine/graph/serialize.ts';
import { f32, i64, openSession, type Feed } from '../../../../src/engine/ort/session.ts';

function maxAbs(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const DIR = join(import.meta.dirname, '../../../../../shared/reference/qwen2-vl-tiny');

test('transpose2d', () => {
  assert.deepEqual([...transpose2d(Float32Array.from([1, 2, 3, 4, 5, 6]), 2, 3)], [1, 4, 2, 5, 3, 6]);
});

test('parameters as graph inputs (HF layout) = parameters baked in (serving layout)', async () => {
  const { config, weights } = await readQwen2VLFolderF32(DIR);
  const kase = JSON.parse(await readFile(join(DIR, 'golden/case.json'), 'utf8'));
  const golden = (await readSafetensors(join(DIR, 'golden/tensors.safetensors'))).tensors;
  const paramFeed: Feed = {};
  for (const p of qwen2VLParamTable(config)) paramFeed[p.name] = f32(weights.get(p.name)!, p.shape);
  const run = async (g: ReturnType<typeof buildVisionEncoderGraph>, feed: Feed) => {
    const s = (await openSession(serializeGraph(g))).session;
    const wanted: Feed = {};
    for (const name of s.inputNames) wanted[name] = feed[name];
    return s.run(wanted);
  };
  const visionFeed: Feed = {
    ...paramFeed,
    pixel_values: f32(golden.pixel_values.data as Float32Array, golden.pixel_values.shape),
    grid_thw: i64(kase.image_grid_thw.flat(), [kase.image_grid_thw.length, 3]),
  };
  const a = await run(buildVisionEncoderGraph(config, { kind: 'inputs' }), visionFeed);
  const b = await run(buildVisionEncoderGraph(config, { kind: 'arrays', weights }), visionFeed);
  assert.ok(maxAbs(a.image_features.data as Float32Array, b.image_features.data as Float32Array) < 1e-6);

  const L = kase.input_ids.length;
  const H = config.text.hiddenSize;
  const decFeed: Feed = {
    ...paramFeed,
    inputs_embeds: f32(golden.inputs_embeds.data as Float32Array, [1, L, H]),
    attention_mask: i64(new Array(L).fill(1), [1, L]),
    position_ids: i64(kase.position_ids.flat(), [3, 1, L]),
  };
  for (let l = 0; l < config.text.numLayers; l++) {
    for (const kind of ['key', 'value'])
      decFeed[`past_key_values.${l}.${kind}`] = f32(new Float32Array(0), [1, config.text.numKvHeads, 0, config.text.headDim]);
  }
  const c = await run(buildDecoderGraph(config, { kind: 'inputs' }), decFeed);
  const d = await run(buildDecoderGraph(config, { kind: 'arrays', weights }), decFeed);
  assert.ok(maxAbs(c.logits.data as Float32Array, d.logits.data as Float32Array) < 1e-6);
  assert.ok(maxAbs(c.logits.data as Float32Array, golden.logits.data as Float32Array) < 1e-4);
});
