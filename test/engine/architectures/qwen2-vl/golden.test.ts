// The network against the golden tensors of ../shared/reference/qwen2-vl-tiny (an independent
// float32 reference of Hugging Face's implementation), stage by stage, fed the golden pixel_values,
// input_ids and position_ids; then 8 greedy KV-cache steps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensors } from '../../../../src/engine/export/safetensors.ts';
import { buildQwen2VLServingGraphs } from '../../../../src/engine/architectures/qwen2-vl/graphs.ts';
import { embedIds, encodeImages, greedyDecode, mergeImageFeatures, openQwen2VLSessions } from '../../../../src/engine/architectures/qwen2-vl/sessions.ts';
import { readQwen2VLFolderF32 } from '../../../../src/engine/architectures/qwen2-vl/weights.ts';

const DIR = join(import.meta.dirname, '../../../../../shared/reference/qwen2-vl-tiny');
const TOL = 1e-4;

function maxAbs(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length, 'length');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

test('qwen2-vl-tiny: every stage within 1e-4 of the golden tensors, greedy ids exact', async () => {
  const { config, weights } = await readQwen2VLFolderF32(DIR);
  const golden = (await readSafetensors(join(DIR, 'golden/tensors.safetensors'))).tensors;
  const gt = (name: string) => golden[name].data as Float32Array;
  const kase = JSON.parse(await readFile(join(DIR, 'golden/case.json'), 'utf8'));
  const graphs = buildQwen2VLServingGraphs(config, { kind: 'arrays', weights }, { debugOutputs: true });
  const s = await openQwen2VLSessions(config, graphs);

  const depth = config.vision.depth;
  const vis = await encodeImages(s, gt('pixel_values'), kase.image_grid_thw, ['patch_embeds', 'vision_block.0', `vision_block.${depth - 1}`]);
  const err: Record<string, number> = {};
  err.vision_patch_embeds = maxAbs(vis.outputs.patch_embeds.data as Float32Array, gt('vision_patch_embeds'));
  err.vision_block0 = maxAbs(vis.outputs['vision_block.0'].data as Float32Array, gt('vision_block0'));
  err.vision_blocks_out = maxAbs(vis.outputs[`vision_block.${depth - 1}`].data as Float32Array, gt('vision_blocks_out'));
  err.vision_embeds = maxAbs(vis.features, gt('vision_embeds'));

  const ids: number[] = kase.input_ids;
  const embeds = mergeImageFeatures(await embedIds(s, ids), ids, vis.features, config);
  err.inputs_embeds = maxAbs(embeds, gt('inputs_embeds'));

  const r = await greedyDecode(s, embeds, kase.position_ids, kase.rope_delta, kase.generated_ids.length, ['hidden.0', 'last_hidden']);
  err.hidden_layer0 = maxAbs(r.prefill.outputs['hidden.0'].data as Float32Array, gt('hidden_layer0'));
  err.last_hidden = maxAbs(r.prefill.outputs.last_hidden.data as Float32Array, gt('last_hidden'));
  err.logits = maxAbs(r.prefill.logits.data as Float32Array, gt('logits'));
  err.step_logits = maxAbs(r.stepLogits, gt('step_logits'));
  for (const [name, e] of Object.entries(err)) assert.ok(e <= TOL, `${name}: max abs ${e} > ${TOL}`);
  assert.deepEqual(r.ids, kase.generated_ids);
});
