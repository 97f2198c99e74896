// The GRPO loop on the tiny preset and real fixture cases: a reward the policy can learn goes up
// and the weights move; a run stopped at a checkpoint and resumed takes exactly the steps an
// unstopped run takes, with or without augmented images; select_best ships the best-validated step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GRPO_DEFAULTS, type GrpoConfig } from '../../../src/training/grpo/grpo-config.ts';
import { trainGrpo } from '../../../src/training/grpo/grpo-trainer.ts';
import { initialModel } from '../../../src/training/model-init.ts';
import { VqaTokenizer } from '../../../src/data/tokenizer.ts';
import type { NamedReward } from '../../../src/training/grpo/reward-set.ts';
import { BestCheckpoint } from '../../../src/training/best-checkpoint.ts';
import { readSafetensors } from '../../../src/engine/export/safetensors.ts';
import { latestCheckpoint } from '../../../src/training/checkpoint.ts';

const FIXTURES = ['test/fixtures/vqa/vqa-rad.jsonl', 'test/fixtures/vqa/slake.jsonl'];

function config(out: string, over: Partial<GrpoConfig> = {}): GrpoConfig {
  return {
    ...GRPO_DEFAULTS,
    preset: 'tiny',
    init: 'scratch',
    train: FIXTURES,
    validation: [],
    num_generations: 4,
    prompts_per_step: 4,
    max_completion_length: 8,
    temperature: 1,
    beta: 0.04,
    loss_type: 'dr_grpo',
    scale_rewards: 'group',
    reward_funcs: ['format'],
    reward_weights: [0],
    learning_rate: 1e-2,
    warmup: 0,
    weight_decay: 0,
    max_steps: 8,
    checkpoint_every: 2,
    seed: 3,
    out,
    ...over,
  };
}

// A task any policy can learn from scratch: write more characters per token (every token's
// spelling counts, so the signal is dense even for a near-uniform random policy).
function charsPerToken(): NamedReward {
  return {
    name: 'chars',
    weight: 1,
    fn: (completions) => completions.map((c) => Math.min(1, c.replace(/<[^>]+>/g, '').length / 64)),
  };
}

test('a few GRPO steps raise the mean reward of a learnable task and change the weights', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'grpo-'));
  try {
    const cfg = config(join(dir, 'run'), { max_steps: 16, beta: 0, learning_rate: 3e-2 });
    const tk = await VqaTokenizer.load(cfg.tokenizer);
    const before = await initialModel('scratch', 'tiny', tk.vocabSize, cfg.seed);
    const r = await trainGrpo(cfg, { extraRewards: [charsPerToken()], quiet: true });
    assert.equal(r.steps, 16);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(r.rewardCurve.slice(0, 4));
    const last = mean(r.rewardCurve.slice(-4));
    console.log(`reward curve: ${r.rewardCurve.map((x) => x.toFixed(3)).join(' ')}`);
    assert.ok(last > first + 0.05, `reward ${first.toFixed(3)} → ${last.toFixed(3)}: ${r.rewardCurve.map((x) => x.toFixed(3)).join(' ')}`);
    let moved = 0;
    for (const [name, w] of before.weights) moved += w.some((x, i) => x !== r.weights.get(name)![i]) ? 1 : 0;
    assert.equal(moved, before.weights.size, 'every weight tensor should have been updated');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('stopping at a checkpoint and resuming gives exactly the steps of an unstopped run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'grpo-'));
  try {
    const straight = await trainGrpo(config(join(dir, 'a'), { max_steps: 4 }), { extraRewards: [charsPerToken()], quiet: true });
    const part = await trainGrpo(config(join(dir, 'b'), { max_steps: 4 }), { extraRewards: [charsPerToken()], quiet: true, stopAfterStep: 2 });
    assert.equal(part.steps, 2);
    const resumed = await trainGrpo(config(join(dir, 'b'), { max_steps: 4 }), { extraRewards: [charsPerToken()], quiet: true });
    assert.equal(resumed.steps, 4);
    assert.deepEqual(resumed.rewardCurve, straight.rewardCurve.slice(2));
    for (const [name, w] of straight.weights) assert.deepEqual(resumed.weights.get(name), w, name);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('augmented rollouts resume exactly too (each image copy is seeded by seed, step and prompt)', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'grpo-'));
  try {
    const cfg = (out: string) => config(join(dir, out), { max_steps: 4, augment_images: true });
    const plain = await trainGrpo(config(join(dir, 'p'), { max_steps: 4 }), { extraRewards: [charsPerToken()], quiet: true });
    const straight = await trainGrpo(cfg('a'), { extraRewards: [charsPerToken()], quiet: true });
    assert.notDeepEqual(straight.rewardCurve, plain.rewardCurve, 'augmentation should change what the rollouts see');
    await trainGrpo(cfg('b'), { extraRewards: [charsPerToken()], quiet: true, stopAfterStep: 2 });
    const resumed = await trainGrpo(cfg('b'), { extraRewards: [charsPerToken()], quiet: true });
    assert.deepEqual(resumed.rewardCurve, straight.rewardCurve.slice(2));
    for (const [name, w] of straight.weights) assert.deepEqual(resumed.weights.get(name), w, name);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('select_best packages the weights of the best validation evaluation and names its step', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'grpo-'));
  try {
    const cfg = config(join(dir, 'run'), {
      max_steps: 6,
      eval_every: 2,
      select_best: true,
      validation: FIXTURES,
      eval_samples: 12,
      package_dir: join(dir, 'pkg'),
    });
    const r = await trainGrpo(cfg, { extraRewards: [charsPerToken()], quiet: true });
    const best = (await BestCheckpoint.open(cfg.out)).best!;
    assert.ok([2, 4, 6].includes(best.step), `best step ${best.step}`);
    const manifest = JSON.parse(await readFile(join(dir, 'pkg', 'manifest.json'), 'utf8'));
    assert.equal(manifest.training.selected_step, best.step);
    assert.equal(manifest.eval.validation.all.accuracy, best.score, 'the package is scored on the same cases as the selection');
    const packaged = await readSafetensors(join(dir, 'pkg', 'model.safetensors'));
    for (const [name, w] of best.weights) assert.deepEqual(packaged.tensors[name].data, w, name);
    if (best.step !== 6) assert.notDeepEqual(packaged.tensors['decoder.ln_f.weight'].data, r.weights.get('decoder.ln_f.weight'));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('freeze_vision keeps every vision encoder weight as initialised while the rest learns', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'grpo-'));
  try {
    const cfg = config(join(dir, 'run'), { max_steps: 3, beta: 0, freeze_vision: true });
    const tk = await VqaTokenizer.load(cfg.tokenizer);
    const before = await initialModel('scratch', 'tiny', tk.vocabSize, cfg.seed);
    const r = await trainGrpo(cfg, { extraRewards: [charsPerToken()], quiet: true });
    let visionTensors = 0;
    for (const [name, w] of before.weights) {
      const moved = w.some((x, i) => x !== r.weights.get(name)![i]);
      if (name.startsWith('vision.')) {
        visionTensors++;
        assert.equal(moved, false, `${name} changed`);
      } else {
        assert.equal(moved, true, `${name} did not learn`);
      }
    }
    assert.ok(visionTensors > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('GRPO refuses a package_dir that already exists before it takes a step', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'grpo-'));
  try {
    const taken = join(dir, 'models', 'tiny-grpo');
    await mkdir(taken, { recursive: true });
    await assert.rejects(trainGrpo(config(join(dir, 'run'), { package_dir: taken }), { quiet: true }), /already exists and packages are immutable/);
    assert.equal(await latestCheckpoint(join(dir, 'run')), null, 'no checkpoint should have been written');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
