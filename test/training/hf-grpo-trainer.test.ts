// GRPO with LoRA on an HF qwen2_vl folder (the shared reference): prompts by its chat template and
// tokenizer, images by its processor; a run stopped after one step and resumed from its checkpoint
// (adapter + AdamW state only) ends with exactly the adapter of an uninterrupted run, and the result
// is a PEFT folder naming its base, with PEFT's tensor names and shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { readSafetensors } from '../../src/engine/export/safetensors.ts';
import { parseLoraConfig } from '../../src/engine/lora/config.ts';
import type { VqaCase } from '../../src/data/vqa-case.ts';
import { GRPO_DEFAULTS } from '../../src/training/grpo/grpo-config.ts';
import { trainGrpoOnHfFolder, type HfGrpoConfig } from '../../src/training/grpo/hf-grpo-trainer.ts';
import { REFERENCE_DIR } from '../support/hf-folders.ts';

async function image(dir: string, name: string, w: number, h: number, shade: number): Promise<string> {
  const file = join(dir, name);
  const px = Buffer.alloc(w * h * 3);
  for (let i = 0; i < px.length; i++) px[i] = (shade + i * 7) % 256;
  await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(file);
  return file;
}

const kase = (id: string, imagePath: string, question: string, answer: string): VqaCase => ({
  id,
  imagePath,
  question,
  answer,
  answerType: 'closed',
  dataset: 'test',
  extra: {},
});

test('GRPO LoRA on an HF qwen2_vl folder: kill-and-resume equals no stop; the result is a PEFT folder naming its base', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'hf-grpo-'));
  try {
    const cases = [
      kase('a', await image(dir, 'a.png', 60, 80, 10), 'Is there a lesion?', 'yes'),
      kase('b', await image(dir, 'b.png', 90, 56, 99), 'Which organ is shown?', 'liver'),
    ];
    const lora = parseLoraConfig({ r: 2, lora_alpha: 4, lora_dropout: 0.1, target_modules: ['q_proj', 'v_proj', 'qkv'] });
    const cfg = (out: string): HfGrpoConfig => ({
      ...GRPO_DEFAULTS,
      base: REFERENCE_DIR,
      method: { type: 'lora', lora },
      out,
      package_dir: join(out, 'adapter'),
      num_generations: 2,
      prompts_per_step: 2,
      max_completion_length: 5,
      max_steps: 2,
      checkpoint_every: 1,
      learning_rate: 0.05,
      warmup: 0,
      reward_funcs: ['format'],
      loss_type: 'dapo',
      scale_rewards: 'group',
      threads: 1,
    });
    // Longer answers score higher: a reward with spread, so the adapter moves.
    const extraRewards = [{ name: 'long', weight: 1, fn: (completions: readonly string[]) => completions.map((t) => t.length / 20) }];
    const straight = await trainGrpoOnHfFolder(cfg(join(dir, 'straight')), { quiet: true, extraRewards, trainCases: cases });
    const stopped = await trainGrpoOnHfFolder(cfg(join(dir, 'resumed')), { quiet: true, extraRewards, trainCases: cases, stopAfterStep: 1 });
    assert.equal(stopped.outputDir, null);
    const resumed = await trainGrpoOnHfFolder(cfg(join(dir, 'resumed')), { quiet: true, extraRewards, trainCases: cases });
    assert.equal(resumed.steps, 2);
    assert.deepEqual([...stopped.rewardCurve, ...resumed.rewardCurve], straight.rewardCurve);
    for (const [k, v] of straight.trainable) assert.deepEqual(resumed.trainable.get(k), v, k);
    assert.ok(
      [...straight.trainable].some(([k, v]) => k.endsWith('lora_B.weight') && v.some((x) => x !== 0)),
      'the adapter trained',
    );

    // The checkpoint holds the adapter (and AdamW state), not the 2-layer base.
    const ckpts = await readdir(join(dir, 'straight', 'checkpoints'));
    const ckpt = await readSafetensors(join(dir, 'straight', 'checkpoints', ckpts.sort().at(-1)!, 'model.safetensors'));
    assert.ok(Object.keys(ckpt.tensors).every((n) => /\.lora_[AB]\.weight$/.test(n)));

    const adapterDir = straight.outputDir!;
    const config = JSON.parse(await readFile(join(adapterDir, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.peft_type, 'LORA');
    assert.equal(config.base_model_name_or_path, REFERENCE_DIR);
    const tensors = (await readSafetensors(join(adapterDir, 'adapter_model.safetensors'))).tensors;
    const q = tensors['base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'];
    assert.ok(q, Object.keys(tensors).join(', '));
    assert.deepEqual(q.shape.length, 2);
    assert.equal(q.shape[0], 2);
    assert.ok(Object.keys(tensors).some((n) => n.startsWith('base_model.model.visual.blocks.0.attn.qkv.lora_B.weight')));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
