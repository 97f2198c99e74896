// The PEFT folder: names, shapes, dtype and config keys as PeftModel.save_pretrained writes them,
// read back with validation against the base's parameter table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '../../../src/engine/export/safetensors.ts';
import { parseLoraConfig } from '../../../src/engine/lora/config.ts';
import { initLoraWeights } from '../../../src/engine/lora/init.ts';
import { loadAdapterFolder, saveAdapterFolder, type LoraAdapter } from '../../../src/engine/lora/peft-folder.ts';
import { selectLoraTargets, type ParamEntry } from '../../../src/engine/lora/targets.ts';

const REFERENCE = '../shared/reference/qwen2-vl-tiny/model.safetensors';

// The keys of peft 0.18.1's LoraConfig.to_dict(), as in a saved adapter_config.json.
const PEFT_KEYS = [
  'alora_invocation_tokens',
  'alpha_pattern',
  'arrow_config',
  'auto_mapping',
  'base_model_name_or_path',
  'bias',
  'corda_config',
  'ensure_weight_tying',
  'eva_config',
  'exclude_modules',
  'fan_in_fan_out',
  'inference_mode',
  'init_lora_weights',
  'layer_replication',
  'layers_pattern',
  'layers_to_transform',
  'loftq_config',
  'lora_alpha',
  'lora_bias',
  'lora_dropout',
  'megatron_config',
  'megatron_core',
  'modules_to_save',
  'peft_type',
  'peft_version',
  'qalora_group_size',
  'r',
  'rank_pattern',
  'revision',
  'target_modules',
  'target_parameters',
  'task_type',
  'trainable_token_indices',
  'use_dora',
  'use_qalora',
  'use_rslora',
];

async function qwenParams(): Promise<ParamEntry[]> {
  const { tensors } = await readSafetensors(REFERENCE);
  return Object.entries(tensors).map(([name, t]) => ({ name, shape: t.shape }));
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'clinvqa-lora-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function adapterFor(params: ParamEntry[]): Promise<LoraAdapter> {
  const config = parseLoraConfig({
    r: 4,
    lora_alpha: 8,
    lora_dropout: 0.05,
    target_modules: ['q_proj', 'v_proj', 'qkv', 'mlp.0', 'patch_embed.proj'],
    init_lora_weights: false,
  });
  const targets = selectLoraTargets(params, config);
  return {
    config,
    meta: { base_model_name_or_path: 'Qwen/Qwen2-VL-2B-Instruct', task_type: 'CAUSAL_LM' },
    targets,
    weights: initLoraWeights(targets, config, 11),
  };
}

test('saved names, shapes, dtype and metadata follow PEFT: base_model.model.<public module>.lora_{A,B}.weight', async () => {
  const params = await qwenParams();
  const adapter = await adapterFor(params);
  await withDir(async (dir) => {
    await saveAdapterFolder(dir, adapter);
    const file = await readSafetensors(join(dir, 'adapter_model.safetensors'));
    assert.deepEqual(file.metadata, { format: 'pt' });
    const shapes = Object.fromEntries(Object.entries(file.tensors).map(([k, t]) => [k, [t.dtype, ...t.shape]]));
    assert.equal(Object.keys(shapes).length, 2 * (4 + 2 + 1 + 1));
    assert.deepEqual(shapes['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'], ['F32', 4, 64]);
    assert.deepEqual(shapes['base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight'], ['F32', 32, 4]);
    assert.deepEqual(shapes['base_model.model.visual.blocks.1.attn.qkv.lora_A.weight'], ['F32', 4, 32]);
    assert.deepEqual(shapes['base_model.model.visual.blocks.1.attn.qkv.lora_B.weight'], ['F32', 96, 4]);
    assert.deepEqual(shapes['base_model.model.visual.merger.mlp.0.lora_B.weight'], ['F32', 128, 4]);
    // Conv3d: lora_A is a Conv3d with the base kernel, lora_B a 1×1×1 Conv3d.
    assert.deepEqual(shapes['base_model.model.visual.patch_embed.proj.lora_A.weight'], ['F32', 4, 3, 2, 14, 14]);
    assert.deepEqual(shapes['base_model.model.visual.patch_embed.proj.lora_B.weight'], ['F32', 32, 4, 1, 1, 1]);
    assert.ok(Object.keys(shapes).every((k) => /^base_model\.model\.(model\.layers|visual)\..*\.lora_[AB]\.weight$/.test(k)));
  });
});

test("adapter_config.json has every LoraConfig key, sorted, with the adapter's values", async () => {
  const params = await qwenParams();
  const adapter = await adapterFor(params);
  await withDir(async (dir) => {
    await saveAdapterFolder(dir, adapter);
    const text = await readFile(join(dir, 'adapter_config.json'), 'utf8');
    const json = JSON.parse(text);
    assert.deepEqual(Object.keys(json), PEFT_KEYS);
    assert.ok(text.startsWith('{\n  "alora_invocation_tokens": null,\n'), 'two-space indent, sorted keys');
    assert.deepEqual(
      {
        peft_type: json.peft_type,
        task_type: json.task_type,
        base: json.base_model_name_or_path,
        r: json.r,
        alpha: json.lora_alpha,
        dropout: json.lora_dropout,
        bias: json.bias,
        fan: json.fan_in_fan_out,
        inference: json.inference_mode,
        init: json.init_lora_weights,
        mts: json.modules_to_save,
        rs: json.use_rslora,
        dora: json.use_dora,
      },
      {
        peft_type: 'LORA',
        task_type: 'CAUSAL_LM',
        base: 'Qwen/Qwen2-VL-2B-Instruct',
        r: 4,
        alpha: 8,
        dropout: 0.05,
        bias: 'none',
        fan: false,
        inference: true,
        init: false,
        mts: null,
        rs: false,
        dora: false,
      },
    );
    assert.deepEqual(json.target_modules, ['mlp.0', 'patch_embed.proj', 'q_proj', 'qkv', 'v_proj']);
  });
});

test('a saved adapter loads back identical, validated against the base table', async () => {
  const params = await qwenParams();
  const adapter = await adapterFor(params);
  await withDir(async (dir) => {
    await saveAdapterFolder(dir, adapter);
    const loaded = await loadAdapterFolder(dir, params);
    assert.deepEqual(loaded.config, adapter.config);
    assert.deepEqual(loaded.meta, adapter.meta);
    assert.deepEqual(loaded.targets, adapter.targets);
    assert.deepEqual(loaded.weights, adapter.weights);
  });
});

test("adapters written with later transformers' module paths (model.language_model.*, model.visual.*) load under the public names", async () => {
  const params = await qwenParams();
  const adapter = await adapterFor(params);
  await withDir(async (dir) => {
    await saveAdapterFolder(dir, adapter);
    const path = join(dir, 'adapter_model.safetensors');
    const file = await readSafetensors(path);
    const renamed = Object.fromEntries(
      Object.entries(file.tensors).map(([k, t]) => [
        k
          .replace('base_model.model.model.layers.', 'base_model.model.model.language_model.layers.')
          .replace('base_model.model.visual.', 'base_model.model.model.visual.'),
        t,
      ]),
    );
    await writeSafetensors(path, renamed, file.metadata);
    const loaded = await loadAdapterFolder(dir, params);
    assert.deepEqual(loaded.weights, adapter.weights);
  });
});

test('bad folders get errors naming the file, the tensor and the shapes', async () => {
  const params = await qwenParams();
  const adapter = await adapterFor(params);
  await withDir(async (dir) => {
    await assert.rejects(loadAdapterFolder(dir, params), /adapter_config\.json: cannot be read \(ENOENT\)/);
    await saveAdapterFolder(dir, adapter);
    const path = join(dir, 'adapter_model.safetensors');
    const file = await readSafetensors(path);
    const q = 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';

    const wrongShape = { ...file.tensors, [q]: { dtype: 'F32' as const, shape: [8, 32], data: new Float32Array(256) } };
    await writeSafetensors(path, wrongShape);
    await assert.rejects(
      loadAdapterFolder(dir, params),
      /adapter_model\.safetensors: tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight" has shape \[8, 32\], expected \[4, 64\] \(r = 4, base model\.layers\.0\.self_attn\.q_proj\.weight \[64, 64\]\)/,
    );

    const missing = { ...file.tensors };
    delete missing[q];
    await writeSafetensors(path, missing);
    await assert.rejects(loadAdapterFolder(dir, params), /tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight" is missing/);

    const extra = {
      ...file.tensors,
      'base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight': { dtype: 'F32' as const, shape: [4, 64], data: new Float32Array(256) },
    };
    await writeSafetensors(path, extra);
    await assert.rejects(
      loadAdapterFolder(dir, params),
      /tensor "base_model\.model\.model\.layers\.0\.self_attn\.k_proj\.lora_A\.weight" belongs to a module that target_modules does not select/,
    );

    await writeSafetensors(path, file.tensors, file.metadata);
    const cfgPath = join(dir, 'adapter_config.json');
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8'));
    await writeFile(cfgPath, JSON.stringify({ ...cfg, use_dora: true }));
    await assert.rejects(loadAdapterFolder(dir, params), /adapter_config\.json: use_dora = true asks for DoRA/);
    await writeFile(cfgPath, JSON.stringify({ ...cfg, target_modules: ['input_layernorm'] }));
    await assert.rejects(loadAdapterFolder(dir, params), /selects "model\.layers\.0\.input_layernorm", which is a module whose weight has shape \[64\]/);
    await writeFile(cfgPath, JSON.stringify({ ...cfg, peft_type: 'IA3' }));
    await assert.rejects(loadAdapterFolder(dir, params), /peft_type is "IA3", only "LORA" adapters are supported/);
  });
});
