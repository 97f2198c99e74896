// GRPO through the architecture-neutral step on a tiny Qwen2-VL: with LoRA the reward of a fixed
// task rises while only the adapter's A and B change (the base is bit-identical, AdamW holds state
// for the adapter only); a run stopped and resumed from its state takes exactly the steps of a run
// that never stopped; full fine-tuning trains a copy and keeps the base as its reference.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AdamW } from '../../src/engine/optim/adamw.ts';
import { parseLoraConfig } from '../../src/engine/lora/config.ts';
import { Qwen2VLPolicy, type TrainMethod } from '../../src/training/qwen2-vl-policy.ts';
import { grpoPolicyStep, type GrpoStepConfig, type StepReward } from '../../src/training/grpo/policy-step.ts';
import type { PolicyPrompt } from '../../src/training/policy.ts';
import { tinyTrainConfig, tinyTrainWeights } from '../support/qwen2-vl-train.ts';
import { gaussian } from '../../src/engine/model/params.ts';
import { rng } from '../../src/engine/random.ts';

const c = tinyTrainConfig();
const base = tinyTrainWeights(c, 21);
const GOOD = 13;
const EOS = 2;

function prompts(): PolicyPrompt[] {
  const normal = gaussian(rng(3));
  const tk = c.tokens;
  const grids: [number, number, number][] = [
    [1, 4, 4],
    [1, 2, 4],
  ];
  return grids.map((g, i) => ({
    promptIds: [3, 10 + i, tk.visionStartTokenId, ...new Array<number>((g[1] * g[2]) / 4).fill(tk.imageTokenId), tk.visionEndTokenId, 20 + i],
    images: { pixelValues: Float32Array.from({ length: g[0] * g[1] * g[2] * c.vision.patchDim }, () => normal()), grids: [g] },
  }));
}

// The task: write tokens below GOOD (a third of the vocabulary) as often as possible.
const reward: StepReward = { name: 'low_ids', weight: 1, fn: (completions) => completions.map((t) => t.filter((x) => x < GOOD).length / 4) };

const CFG: GrpoStepConfig = {
  num_generations: 4,
  num_iterations: 1,
  max_completion_length: 4,
  temperature: 1,
  top_p: 1,
  loss_type: 'dapo',
  scale_rewards: 'group',
  epsilon: 0.2,
  epsilon_high: 0.28,
  beta: 0.04,
  mask_truncated_completions: false,
  grad_clip: 1,
  seed: 9,
};

const LORA: TrainMethod = {
  type: 'lora',
  lora: parseLoraConfig({ r: 4, lora_alpha: 8, lora_dropout: 0.05, target_modules: ['q_proj', 'v_proj', 'o_proj', 'up_proj', 'down_proj', 'lm_head'] }),
};

async function run(method: TrainMethod, from: number, to: number, resume?: { trainable: Map<string, Float32Array>; state: ReturnType<AdamW['exportState']> }) {
  const policy = await Qwen2VLPolicy.create({ config: c, base, method, seed: 5, stopIds: [EOS], padId: 0, ...(resume ? { trainable: resume.trainable } : {}) });
  const opt = new AdamW(policy.trainable, { weightDecay: 0.01, noWeightDecay: (n) => !policy.decays(n) });
  if (resume) opt.importState(resume.state);
  const rewards: number[] = [];
  try {
    for (let step = from; step < to; ) {
      const r = await grpoPolicyStep(policy, opt, prompts(), [reward], CFG, step, () => 0.05);
      step += r.steps;
      rewards.push(r.metrics.reward!);
    }
  } finally {
    await policy.release();
  }
  return { policy, rewards, state: opt.exportState() };
}

const copy = (m: Map<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, v.slice()]));

test('GRPO with LoRA on a tiny Qwen2-VL: the reward rises, only A and B change, AdamW holds adapter state only', async () => {
  const before = copy(base);
  const { policy, rewards, state } = await run(LORA, 0, 12);
  const early = (rewards[0]! + rewards[1]! + rewards[2]!) / 3;
  const late = (rewards[9]! + rewards[10]! + rewards[11]!) / 3;
  console.log(`GRPO LoRA reward curve: ${rewards.map((r) => r.toFixed(2)).join(' ')}`);
  assert.ok(late > early + 0.2, `reward ${rewards.map((r) => r.toFixed(2)).join(' ')}`);
  for (const [k, v] of base) assert.deepEqual(v, before.get(k), `${k} changed`);
  const names = [...policy.trainable.keys()];
  assert.ok(names.length > 0 && names.every((n) => /\.lora_[AB]\.weight$/.test(n)), 'trainable = adapter tensors');
  assert.deepEqual(Object.keys(state.m).sort(), [...names].sort());
  assert.ok(
    names.some((n) => n.endsWith('lora_B.weight') && policy.trainable.get(n)!.some((x) => x !== 0)),
    'B moved off zero',
  );
});

test('GRPO with LoRA: stopping after 2 steps and resuming from the adapter + AdamW state equals 4 steps without a stop', async () => {
  const straight = await run(LORA, 0, 4);
  const first = await run(LORA, 0, 2);
  const resumed = await run(LORA, 2, 4, { trainable: copy(first.policy.trainable), state: first.state });
  assert.deepEqual([...first.rewards, ...resumed.rewards], straight.rewards);
  for (const [k, v] of straight.policy.trainable) assert.deepEqual(resumed.policy.trainable.get(k), v, k);
});

test('GRPO full fine-tuning: every weight is trained on a copy; the base (the reference) is unchanged', async () => {
  const before = copy(base);
  const { policy, state } = await run({ type: 'full' }, 0, 2);
  for (const [k, v] of base) assert.deepEqual(v, before.get(k), `${k} changed`);
  assert.equal(policy.trainable.size, base.size);
  assert.equal(Object.keys(state.m).length, base.size);
  const moved = [...policy.trainable].filter(([k, v]) => v.some((x, i) => x !== base.get(k)![i])).length;
  assert.ok(moved > base.size / 2, `${moved} of ${base.size} tensors moved`);
});
