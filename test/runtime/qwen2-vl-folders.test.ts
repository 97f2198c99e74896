// The server's loader on a folder unlike the reference: transformers v5 config layout, BF16 shards
// in the later parameter names, tied embeddings without lm_head.weight, GQA 3:1, other M-RoPE
// sections, other processor limits. Loads, serves, and batches exactly as alone.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { encodeSafetensors, readSafetensors, type SafetensorsTensors } from '../../src/engine/export/safetensors.ts';
import { paramCount } from '../../src/engine/architectures/qwen2-vl/params.ts';
import { parseQwen2VLConfig } from '../../src/engine/architectures/qwen2-vl/config.ts';
import { writeRandomQwen2VLFolder } from '../../src/engine/architectures/qwen2-vl/random-folder.ts';
import { createModelLoader } from '../../src/runtime/architectures.ts';
import type { Qwen2VlRuntime } from '../../src/runtime/qwen2-vl/runtime.ts';
import { GOLDEN_DIR, REFERENCE_DIR } from '../support/hf-folders.ts';

const TOKENS = {
  bos_token_id: 496,
  eos_token_id: 498,
  vision_start_token_id: 505,
  vision_end_token_id: 506,
  vision_token_id: 507,
  image_token_id: 508,
  video_token_id: 509,
};

const CONFIG_V5 = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  ...TOKENS,
  text_config: {
    hidden_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 6,
    num_key_value_heads: 2,
    intermediate_size: 80,
    vocab_size: 520,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 4096,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    rope_parameters: { rope_type: 'default', mrope_section: [4, 2, 2], rope_theta: 10000 },
  },
  vision_config: {
    depth: 2,
    embed_dim: 48,
    num_heads: 3,
    mlp_ratio: 2,
    hidden_size: 96,
    in_channels: 3,
    patch_size: 14,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
    hidden_act: 'quick_gelu',
  },
};

const LIMITS = { maxInputPixels: 10_000_000, maxBytes: 10_000_000 };
const GREEDY = { temperature: 0, topP: 1 };

/** The later names transformers ≥ 4.52 save. */
const laterName = (n: string) => (n.startsWith('visual.') ? `model.${n}` : n.startsWith('model.') ? `model.language_model.${n.slice(6)}` : n);

describe('loading a v5-layout, BF16-sharded, tied Qwen2-VL folder', () => {
  let root: string;
  let runtime: Qwen2VlRuntime;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'clinvqa-qwen-v5-'));
    const dir = path.join(root, 'models', 'tiny-v5');
    await writeRandomQwen2VLFolder(dir, CONFIG_V5, { dtype: 'BF16', shardBytes: 60_000, seed: 3 });
    // rename every tensor to the later names, shard by shard, and rewrite the index
    const index = JSON.parse(await readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const shards = [...new Set(Object.values(index.weight_map))];
    assert.ok(shards.length >= 2, 'the folder is sharded');
    for (const shard of shards) {
      const { tensors } = await readSafetensors(path.join(dir, shard));
      const renamed: SafetensorsTensors = {};
      for (const [name, t] of Object.entries(tensors)) renamed[laterName(name)] = t;
      await writeFile(path.join(dir, shard), encodeSafetensors(renamed, { format: 'pt' }));
    }
    index.weight_map = Object.fromEntries(Object.entries(index.weight_map).map(([n, f]) => [laterName(n), f]));
    await writeFile(path.join(dir, 'model.safetensors.index.json'), JSON.stringify(index));
    for (const file of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) await cp(path.join(REFERENCE_DIR, file), path.join(dir, file));
    // the template as a .jinja file, processor limits of its own
    const template = JSON.parse(await readFile(path.join(REFERENCE_DIR, 'chat_template.json'), 'utf8')).chat_template as string;
    await writeFile(path.join(dir, 'chat_template.jinja'), template);
    const processor = JSON.parse(await readFile(path.join(REFERENCE_DIR, 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;
    delete processor.min_pixels;
    delete processor.max_pixels;
    processor.size = { shortest_edge: 6272, longest_edge: 40000 };
    await writeFile(path.join(dir, 'preprocessor_config.json'), JSON.stringify(processor));
    const loader = createModelLoader({ dataDir: path.join(root, 'var') });
    runtime = (await loader(dir, { executionProviders: ['cpu'], intraOpThreads: 1 })) as Qwen2VlRuntime;
  });
  after(async () => {
    await runtime?.dispose();
    await rm(root, { recursive: true, force: true });
  });

  it('has the card of what it loaded: bfloat16, every parameter once (tied lm_head absent)', async () => {
    assert.equal(runtime.id, 'tiny-v5');
    assert.equal(runtime.manifest.dtype, 'bfloat16');
    assert.equal(runtime.manifest.parameters, paramCount(parseQwen2VLConfig(CONFIG_V5)));
    assert.equal(runtime.imageProcessor.maxPixels, 40000);
    assert.ok((runtime.manifest.weight_files as string[]).length >= 2);
    assert.equal(runtime.manifest.chat_template, 'chat_template.jinja');
  });

  it('answers a batch of two images of different sizes and questions of different lengths exactly as each alone', async () => {
    const png = await readFile(path.join(GOLDEN_DIR, 'image.png'));
    const a = await runtime.prepareImage(png, LIMITS);
    const b = await runtime.prepareImage(await sharp(png).resize(60, 200).png().toBuffer(), LIMITS);
    assert.notDeepEqual(a.gridThw, b.gridThw);
    // min_pixels 6272 = 8 merged tokens at least
    assert.ok(b.gridThw![1] * b.gridThw![2] >= 32);
    const reqs = [
      { patches: a.patches, gridThw: a.gridThw!, question: 'Which organ is abnormal?', params: { ...GREEDY, maxTokens: 7 } },
      {
        patches: b.patches,
        gridThw: b.gridThw!,
        question: 'Is there any evidence of a mass in the left upper lobe of the lung?',
        params: { ...GREEDY, maxTokens: 7 },
      },
    ];
    const together = await runtime.generateBatch(reqs);
    for (const [i, req] of reqs.entries()) {
      const [alone] = await runtime.generateBatch([req]);
      assert.equal(together[i]!.text, alone!.text, `row ${i}`);
      assert.equal(together[i]!.completionTokens, alone!.completionTokens);
    }
  });

  it('a shard renamed away is a missing shard, named', async () => {
    const dir = path.join(root, 'models', 'tiny-v5');
    const shard = (await readdir(dir)).filter((f) => /^model-.*\.safetensors$/.test(f)).sort()[0]!;
    await rename(path.join(dir, shard), path.join(dir, `${shard}.bak`));
    try {
      const loader = createModelLoader({ dataDir: path.join(root, 'var') });
      await assert.rejects(loader(dir, { executionProviders: ['cpu'] }), new RegExp(`${shard.replace(/\./g, '\\.')}: missing shard`));
    } finally {
      await rename(path.join(dir, `${shard}.bak`), path.join(dir, shard));
    }
  });
});
