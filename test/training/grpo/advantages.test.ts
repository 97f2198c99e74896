import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeAdvantages } from '../../../src/training/grpo/advantages.ts';

const closeAll = (actual: readonly number[], expected: readonly number[], tol = 1e-12) => {
  assert.equal(actual.length, expected.length);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) <= tol, `[${i}] ${a} vs ${expected[i]}`));
};

// Two prompts, G = 3: group A = [1, 0, 0.5] (mean 0.5, unbiased std sqrt(0.5 / 2) = 0.5),
// group B = [2, 2, 2] (mean 2, std 0: no learning signal).
// Whole batch: mean 1.25, squared deviations 0.0625 + 1.5625 + 0.5625 + 3 * 0.5625 = 3.875,
// unbiased std sqrt(3.875 / 5) = 0.880341...
const rewards = [1, 0, 0.5, 2, 2, 2];
const batchStd = Math.sqrt(3.875 / 5);

test("scale_rewards 'none' (Dr. GRPO): r - group mean", () => {
  const { advantages, stats } = computeAdvantages(rewards, 3, 'none');
  closeAll(advantages, [0.5, -0.5, 0, 0, 0, 0]);
  closeAll(stats.groupMeans, [0.5, 2]);
  closeAll(stats.groupStds, [0.5, 0]);
  assert.equal(stats.fracZeroStdGroups, 0.5);
  assert.equal(stats.numGroups, 2);
  assert.ok(Math.abs(stats.meanReward - 1.25) < 1e-12);
});

test("scale_rewards 'group': divided by the group's unbiased std + 1e-4", () => {
  const { advantages } = computeAdvantages(rewards, 3, 'group');
  closeAll(advantages, [0.5 / 0.5001, -0.5 / 0.5001, 0, 0, 0, 0]);
});

test("scale_rewards 'batch': divided by the whole batch's unbiased std + 1e-4", () => {
  const { advantages, stats } = computeAdvantages(rewards, 3, 'batch');
  assert.ok(Math.abs(stats.batchRewardStd - 0.8803408430829505) < 1e-12);
  closeAll(advantages, [0.5 / (batchStd + 1e-4), -0.5 / (batchStd + 1e-4), 0, 0, 0, 0]);
});

test('unbiased std as torch.std: G = 2 with rewards {0, 1} gives std 0.7071, not 0.5', () => {
  const { advantages } = computeAdvantages([0, 1], 2, 'group');
  closeAll(advantages, [-0.5 / (Math.SQRT1_2 + 1e-4), 0.5 / (Math.SQRT1_2 + 1e-4)]);
});

test('advantages sum to zero within each group', () => {
  const r = [0.3, 0.9, 0.1, 0.7, 1, 0, 0, 1];
  for (const scale of ['group', 'batch', 'none'] as const) {
    const { advantages } = computeAdvantages(r, 4, scale);
    for (let g = 0; g < 2; g++) {
      const s = advantages.slice(g * 4, g * 4 + 4).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(s) < 1e-12, `${scale} group ${g}: ${s}`);
    }
  }
});

test('rejects bad shapes and values', () => {
  assert.throws(() => computeAdvantages([1, 2, 3], 2, 'group'), /multiple/);
  assert.throws(() => computeAdvantages([1], 1, 'group'), />= 2/);
  assert.throws(() => computeAdvantages([], 2, 'group'));
  assert.throws(() => computeAdvantages([1, Number.NaN], 2, 'group'), /finite/);
  assert.throws(() => computeAdvantages([1, 2], 2, 'weird' as never), /unknown/);
});
