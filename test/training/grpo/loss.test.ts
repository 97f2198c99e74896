import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grpoLoss, type GrpoLossConfig, type GrpoLossInputs, type LossType } from '../../../src/training/grpo/loss.ts';
import { rng } from '../../../src/engine/random.ts';

const close = (a: number, b: number, tol = 1e-9, msg = '') => assert.ok(Math.abs(a - b) <= tol, `${msg} ${a} vs ${b}`);

// Hand example: 2 sequences x 3 positions, advantages [1, -2], epsilon 0.2.
//   seq 0 (2 tokens, A = +1): ratios 1.1, 1.5 -> pg = -min(1.1, 1.1) = -1.1; -min(1.5, 1.2) = -1.2 (clipped high)
//   seq 1 (3 tokens, A = -2): ratios 0.9, 0.5, 1.3 -> pg = 1.8; -min(-1.0, -1.6) = 1.6 (clipped low);
//                                                       -min(-2.6, -2.4) = 2.6 (above 1 + eps but A < 0: not clipped)
const ratios = [1.1, 1.5, 1, 0.9, 0.5, 1.3];
const logpOld = [-1.0, -2.0, -0.5, -0.7, -1.5, -2.5];
const base: GrpoLossInputs = {
  numSequences: 2,
  seqLen: 3,
  logpOld,
  logpNew: logpOld.map((lp, k) => lp + Math.log(ratios[k]!)),
  mask: [1, 1, 0, 1, 1, 1],
  advantages: [1, -2],
};

test("loss_type 'grpo': per-sequence token mean, then mean over sequences", () => {
  const { loss, grad, metrics } = grpoLoss(base, { lossType: 'grpo', epsilonLow: 0.2 });
  close(loss, ((-1.1 - 1.2) / 2 + (1.8 + 1.6 + 2.6) / 3) / 2); // 0.425
  // d/dlogp = -A * ratio * weight; 0 where clipped or masked. weights 1/(2*2) and 1/(2*3).
  const expected = [-1.1 / 4, 0, 0, (2 * 0.9) / 6, 0, (2 * 1.3) / 6];
  expected.forEach((g, k) => close(grad[k]!, g, 1e-6, `grad[${k}]`));
  close(metrics.lowClipFraction, 1 / 5);
  close(metrics.highClipFraction, 1 / 5);
  close(metrics.regionClipFraction, 2 / 5);
  close(metrics.meanRatio, (1.1 + 1.5 + 0.9 + 0.5 + 1.3) / 5);
  assert.equal(metrics.numTokens, 5);
  assert.equal(metrics.meanKl, null);
  assert.equal(metrics.meanEntropy, null);
});

test("loss_type 'dr_grpo': token sum / (sequences x max_completion_length)", () => {
  const { loss, grad } = grpoLoss(base, { lossType: 'dr_grpo', epsilonLow: 0.2, maxCompletionLength: 4 });
  close(loss, (-2.3 + 6.0) / 8); // 0.4625
  close(grad[0]!, -1.1 / 8, 1e-6);
  close(grad[5]!, 2.6 / 8, 1e-6);
  assert.throws(() => grpoLoss(base, { lossType: 'dr_grpo' }), /maxCompletionLength/);
});

test("loss_type 'dapo': token sum / tokens in the batch (or a given normaliser)", () => {
  close(grpoLoss(base, { lossType: 'dapo', epsilonLow: 0.2 }).loss, 3.7 / 5);
  close(grpoLoss(base, { lossType: 'dapo', epsilonLow: 0.2, dapoTokenNormalizer: 10 }).loss, 3.7 / 10);
});

test('epsilon_high widens the upper clip only (clip-higher)', () => {
  const { loss, metrics } = grpoLoss(base, { lossType: 'dapo', epsilonLow: 0.2, epsilonHigh: 0.6 });
  // seq 0 token 1 (ratio 1.5) is no longer clipped: -1.5 instead of -1.2; the low clip is unchanged.
  close(loss, (-1.1 - 1.5 + 1.8 + 1.6 + 2.6) / 5);
  close(metrics.highClipFraction, 0);
  close(metrics.lowClipFraction, 1 / 5);
});

test('mask_truncated_completions drops unterminated completions from the loss', () => {
  const inputs = { ...base, terminated: [true, false] };
  const { loss, grad, metrics } = grpoLoss(inputs, { lossType: 'grpo', epsilonLow: 0.2, maskTruncatedCompletions: true });
  // As TRL: the dropped sequence still counts in the mean over sequences.
  close(loss, -1.15 / 2);
  assert.deepEqual([...grad.slice(3)], [0, 0, 0]);
  assert.equal(metrics.numTokens, 2);
  assert.equal(metrics.numMaskedTruncated, 1);
  // Off by default.
  close(grpoLoss(inputs, { lossType: 'grpo', epsilonLow: 0.2 }).loss, 0.425);
  assert.throws(() => grpoLoss(base, { lossType: 'grpo', maskTruncatedCompletions: true }), /terminated/);
});

test('k3 KL term: beta * (exp(ref - logp) - (ref - logp) - 1), and its metric', () => {
  // One token, A = 0 so only the KL term remains; ref - logp = ln 2 -> k3 = 2 - ln 2 - 1.
  const one: GrpoLossInputs = { numSequences: 1, seqLen: 1, logpNew: [-1], logpRef: [-1 + Math.LN2], mask: [1], advantages: [0] };
  const k3 = 1 - Math.LN2;
  const r = grpoLoss(one, { lossType: 'grpo', beta: 0.5 });
  close(r.loss, 0.5 * k3);
  close(r.metrics.meanKl!, k3);
  close(r.grad[0]!, 0.5 * (1 - 2), 1e-6); // d k3 / d logp = 1 - exp(ref - logp)
  // beta = 0 still reports the KL when the reference log-probs are given
  const noBeta = grpoLoss(one, { lossType: 'grpo' });
  close(noBeta.loss, 0);
  close(noBeta.metrics.meanKl!, k3);
  assert.throws(() => grpoLoss({ ...one, logpRef: undefined }, { lossType: 'grpo', beta: 0.1 }), /logpRef/);
});

test('num_iterations = 1 (no logpOld): ratio 1 and gradient -A * weight, as a detached copy', () => {
  const withoutOld = grpoLoss({ ...base, logpOld: undefined }, { lossType: 'grpo' });
  const withCopy = grpoLoss({ ...base, logpOld: base.logpNew }, { lossType: 'grpo' });
  close(withoutOld.loss, withCopy.loss);
  close(withoutOld.loss, (-1 + 2) / 2); // seq means -A: -1 and +2
  assert.deepEqual([...withoutOld.grad], [...withCopy.grad]);
  close(withoutOld.grad[0]!, -1 / 4, 1e-7);
});

test('entropy metric is the masked mean', () => {
  const r = grpoLoss({ ...base, entropy: [1, 2, 100, 3, 4, 5] }, { lossType: 'grpo' });
  close(r.metrics.meanEntropy!, 3);
});

test('dLoss/dlogp matches central finite differences for every loss_type, with clipping, KL and masks', () => {
  const rand = rng(7);
  const n = 4;
  const t = 8;
  const eps = 0.2;
  const epsHigh = 0.28;
  const logpOld: number[] = [];
  const logpNew: number[] = [];
  const logpRef: number[] = [];
  for (let k = 0; k < n * t; k++) {
    logpOld.push(-0.2 - 3 * rand());
    // log-ratios in [-0.8, 0.8] but kept away from the clip boundaries (the loss has kinks there)
    let lr: number;
    do lr = (rand() - 0.5) * 1.6;
    while ([Math.log(1 - eps), Math.log(1 + epsHigh)].some((b) => Math.abs(lr - b) < 1e-3));
    logpNew.push(logpOld[k]! + lr);
    logpRef.push(logpOld[k]! + (rand() - 0.5));
  }
  const lengths = [8, 5, 2, 7];
  const mask = Array.from({ length: n * t }, (_, k) => (k % t < lengths[Math.floor(k / t)]! ? 1 : 0));
  const inputs: GrpoLossInputs = {
    numSequences: n,
    seqLen: t,
    logpOld,
    logpNew,
    logpRef,
    mask,
    advantages: [1.3, -0.7, 0.4, -1.9],
    terminated: [true, true, false, true],
  };
  const h = 1e-6;
  for (const lossType of ['grpo', 'dr_grpo', 'dapo'] as LossType[]) {
    for (const maskTruncatedCompletions of [false, true]) {
      const config: GrpoLossConfig = { lossType, epsilonLow: eps, epsilonHigh: epsHigh, beta: 0.04, maxCompletionLength: 8, maskTruncatedCompletions };
      const { grad, metrics } = grpoLoss(inputs, config);
      assert.ok(metrics.lowClipFraction > 0 && metrics.highClipFraction > 0, 'the example must exercise both clips');
      let worst = 0;
      for (let k = 0; k < n * t; k++) {
        const plus = [...logpNew];
        const minus = [...logpNew];
        plus[k]! += h;
        minus[k]! -= h;
        const fd = (grpoLoss({ ...inputs, logpNew: plus }, config).loss - grpoLoss({ ...inputs, logpNew: minus }, config).loss) / (2 * h);
        worst = Math.max(worst, Math.abs(fd - grad[k]!) / Math.max(1e-3, Math.abs(fd)));
        if (mask[k] === 0) assert.equal(grad[k], 0);
      }
      assert.ok(worst < 1e-4, `${lossType} maskTruncated=${maskTruncatedCompletions}: worst relative error ${worst}`);
    }
  }
});

test('rejects inconsistent shapes and masks', () => {
  assert.throws(() => grpoLoss({ ...base, advantages: [1] }, { lossType: 'grpo' }), /advantages/);
  assert.throws(() => grpoLoss({ ...base, mask: [1, 1, 0] }, { lossType: 'grpo' }), /mask/);
  assert.throws(() => grpoLoss({ ...base, mask: [1, 0.5, 0, 1, 1, 1] }, { lossType: 'grpo' }), /0\/1/);
  assert.throws(() => grpoLoss(base, { lossType: 'nope' as LossType }), /unknown/);
});
