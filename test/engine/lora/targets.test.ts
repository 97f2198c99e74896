// Target selection follows PEFT's matching, checked on the public Qwen2-VL parameter names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readSafetensors } from '../../../src/engine/export/safetensors.ts';
import { parseLoraConfig, loraScale, LoraConfigError } from '../../../src/engine/lora/config.ts';
import { adapterShapes, selectLoraTargets, type ParamEntry } from '../../../src/engine/lora/targets.ts';

const REFERENCE = '../shared/reference/qwen2-vl-tiny/model.safetensors';

async function qwenParams(): Promise<ParamEntry[]> {
  const { tensors } = await readSafetensors(REFERENCE);
  return Object.entries(tensors).map(([name, t]) => ({ name, shape: t.shape }));
}

const modules = (params: ParamEntry[], target_modules: string[] | string, exclude_modules: string[] | string | null = null) =>
  selectLoraTargets(params, { target_modules, exclude_modules })
    .map((t) => t.module)
    .sort();

test('a name list matches module paths by their trailing components', async () => {
  const params = await qwenParams();
  assert.deepEqual(modules(params, ['q_proj', 'v_proj']), [
    'model.layers.0.self_attn.q_proj',
    'model.layers.0.self_attn.v_proj',
    'model.layers.1.self_attn.q_proj',
    'model.layers.1.self_attn.v_proj',
  ]);
  // "mlp.0" is two components; "qkv"/"fc1" reach the vision tower.
  assert.deepEqual(modules(params, ['mlp.0', 'qkv']), ['visual.blocks.0.attn.qkv', 'visual.blocks.1.attn.qkv', 'visual.merger.mlp.0']);
  // A full path matches exactly that module.
  assert.deepEqual(modules(params, ['model.layers.1.mlp.down_proj']), ['model.layers.1.mlp.down_proj']);
  // Suffix means whole components: "proj" does not hit "q_proj", but does hit the Conv3d patch embed.
  assert.deepEqual(modules(params, ['proj']), ['visual.blocks.0.attn.proj', 'visual.blocks.1.attn.proj', 'visual.patch_embed.proj']);
});

test('the seven decoder projections give 14 linear targets with [out, in] from the table', async () => {
  const params = await qwenParams();
  const t = selectLoraTargets(params, { target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], exclude_modules: null });
  assert.equal(t.length, 14);
  const k = t.find((x) => x.module === 'model.layers.0.self_attn.k_proj')!;
  assert.deepEqual(
    [k.kind, k.outFeatures, k.inFeatures, k.aName, k.bName],
    ['linear', 32, 64, 'model.layers.0.self_attn.k_proj.lora_A.weight', 'model.layers.0.self_attn.k_proj.lora_B.weight'],
  );
  assert.deepEqual(adapterShapes(k, 8), { a: [8, 64], b: [32, 8] });
});

test('a convolution is adapted on its flattened kernel, with PEFT conv shapes on disk', async () => {
  const params = await qwenParams();
  const [conv] = selectLoraTargets(params, { target_modules: ['patch_embed.proj'], exclude_modules: null });
  assert.deepEqual([conv.kind, conv.outFeatures, conv.inFeatures], ['conv', 32, 1176]);
  assert.deepEqual(adapterShapes(conv, 4), { a: [4, 3, 2, 14, 14], b: [32, 4, 1, 1, 1] });
});

test('a string is a regex over the whole path; "all-linear" leaves out lm_head, embeddings and convs', async () => {
  const params = await qwenParams();
  assert.deepEqual(modules(params, String.raw`model\.layers\.1\.self_attn\.(q|k)_proj`), [
    'model.layers.1.self_attn.k_proj',
    'model.layers.1.self_attn.q_proj',
  ]);
  // fullmatch: a regex that matches only part of a path selects nothing.
  assert.throws(() => modules(params, 'q_proj'), /matches no linear layer/);
  const all = modules(params, 'all-linear');
  assert.equal(all.length, 2 * 7 + 2 * 4 + 2);
  assert.ok(!all.includes('lm_head') && !all.includes('model.embed_tokens') && !all.includes('visual.patch_embed.proj'));
  assert.ok(all.includes('visual.merger.mlp.2') && all.includes('visual.blocks.1.mlp.fc2'));
});

test('exclude_modules removes matches; explicit lm_head is allowed', async () => {
  const params = await qwenParams();
  assert.deepEqual(modules(params, ['q_proj'], ['model.layers.0.self_attn.q_proj']), ['model.layers.1.self_attn.q_proj']);
  assert.deepEqual(modules(params, ['lm_head']), ['lm_head']);
});

test('targets LoRA cannot wrap are errors that name the module, as in PEFT', async () => {
  const params = await qwenParams();
  assert.throws(
    () => modules(params, ['mlp']),
    (e: Error) => e instanceof LoraConfigError && /"model\.layers\.0\.mlp", which is a container/.test(e.message),
  );
  assert.throws(() => modules(params, ['embed_tokens']), /"model\.embed_tokens", which is an embedding/);
  assert.throws(() => modules(params, ['norm1']), /"visual\.blocks\.0\.norm1", which is a module whose weight has shape \[32\]/);
  assert.throws(() => modules(params, ['nothing_here']), /target_modules \[nothing_here\] matches no linear layer/);
});

test('config parsing: PEFT defaults, scale alpha/r or alpha/sqrt(r), clear errors', () => {
  const c = parseLoraConfig({ r: 16, target_modules: ['q_proj'] });
  assert.deepEqual(
    { alpha: c.lora_alpha, dropout: c.lora_dropout, rs: c.use_rslora, init: c.init_lora_weights },
    { alpha: 8, dropout: 0, rs: false, init: true },
  );
  assert.equal(loraScale(c), 0.5);
  assert.equal(loraScale({ r: 16, lora_alpha: 32, use_rslora: true }), 8);
  assert.throws(() => parseLoraConfig({ r: 0, target_modules: ['q_proj'] }), /r must be a positive integer/);
  assert.throws(() => parseLoraConfig({ r: 4, target_modules: [] }), /target_modules must be a non-empty list/);
  assert.throws(() => parseLoraConfig({ r: 4, target_modules: '(' }), /not a valid regular expression/);
  assert.throws(() => parseLoraConfig({ r: 4, target_modules: ['q'], lora_dropout: 1 }), /lora_dropout must be in \[0, 1\)/);
  assert.throws(() => parseLoraConfig({ r: 4 }), /target_modules is required/);
});

test('an architecture\'s own "embedding" label is honoured', () => {
  const params = [
    { name: 'tok.table.weight', shape: [100, 8], kind: 'embedding' },
    { name: 'tok.out.weight', shape: [4, 8], kind: 'linear' },
  ];
  assert.throws(() => selectLoraTargets(params, { target_modules: ['table'], exclude_modules: null }), /"tok\.table", which is an embedding/);
  assert.deepEqual(
    selectLoraTargets(params, { target_modules: 'all-linear', exclude_modules: null }).map((t) => t.module),
    ['tok.out'],
  );
});
