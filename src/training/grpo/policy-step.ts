// One GRPO step on any TrainablePolicy (the architecture-neutral form of the trainer's loop):
//   1. G sampled completions per prompt from the current policy, seeds from (seed, step, row);
//   2. rewards, weighted and summed; 3. advantages (scale_rewards);
//   4. log-probs under the old (num_iterations > 1) and reference (beta ≠ 0) policies;
//   5. per iteration: current log-probs, the loss and dLoss/dlogp in TS, the trainable tensors'
//      gradients from the architecture's training graph, clipping, AdamW.
import type { AdamW } from '../../engine/optim/adamw.ts';
import { clipGradNorm } from '../../engine/optim/grad-clip.ts';
import type { PolicyPrompt, TrainablePolicy } from '../policy.ts';
import { computeAdvantages, type ScaleRewards } from './advantages.ts';
import { grpoLoss, grpoLossConfigOf, type LossType } from './loss.ts';

export interface GrpoStepConfig {
  num_generations: number;
  num_iterations: number;
  max_completion_length: number;
  temperature: number;
  top_p: number;
  loss_type: LossType;
  scale_rewards: ScaleRewards;
  epsilon: number;
  epsilon_high?: number | null;
  beta: number;
  mask_truncated_completions: boolean;
  grad_clip: number;
  seed: number;
}

/** Rewards of the step's completions (one number per completion, NaN = no opinion). */
export type StepReward = { name: string; weight: number; fn(completions: number[][], promptIndex: number[]): Promise<number[]> | number[] };

export interface GrpoStepResult {
  /** Optimizer steps taken (num_iterations, or fewer at the end of the run). */
  steps: number;
  metrics: Record<string, number>;
  completions: number[][];
  rewards: number[];
}

/**
 * Runs the step that follows `step` (optimizer updates done so far); `lr(k)` is the rate of update k
 * (1-based). `maxSteps` bounds the iterations so a run ends exactly at its total.
 */
export async function grpoPolicyStep<B extends { B: number; S: number; lossMask: Float32Array }>(
  policy: TrainablePolicy<B>,
  opt: AdamW,
  prompts: readonly PolicyPrompt[],
  rewards: readonly StepReward[],
  cfg: GrpoStepConfig,
  step: number,
  lr: (k: number) => number,
  maxSteps = Number.POSITIVE_INFINITY,
): Promise<GrpoStepResult> {
  const t0 = performance.now();
  const G = cfg.num_generations;
  const rows = prompts.flatMap((p, i) =>
    Array.from({ length: G }, (_, g) => ({
      ...p,
      temperature: cfg.temperature,
      topP: cfg.top_p,
      maxTokens: cfg.max_completion_length,
      seed: (cfg.seed * 1_000_003 + step * 9176 + i * G + g) >>> 0,
    })),
  );
  const rollout = await policy.rollout(rows);
  const tRollout = performance.now();
  const completions = rollout.map((r) => r.tokens);
  const promptIndex = rows.map((_, k) => Math.floor(k / G));
  const combined = new Array<number>(rows.length).fill(0);
  const metrics: Record<string, number> = {};
  for (const rf of rewards) {
    const values = await rf.fn(completions, promptIndex);
    values.forEach((v, i) => {
      if (Number.isFinite(v)) combined[i] += rf.weight * v;
    });
    const finite = values.filter(Number.isFinite);
    metrics[`rewards/${rf.name}/mean`] = finite.reduce((a, b) => a + b, 0) / Math.max(1, finite.length);
  }
  const adv = computeAdvantages(combined, G, cfg.scale_rewards);
  const batch = policy.batch(rows.map((r, i) => ({ promptIds: r.promptIds, images: r.images, completion: completions[i]! })));
  const logpOld = cfg.num_iterations > 1 ? (await policy.score(batch, 'current')).logprobs : undefined;
  const logpRef = cfg.beta !== 0 ? (await policy.score(batch, 'reference')).logprobs : undefined;
  const terminated = rollout.map((r) => r.finishReason === 'stop');
  let taken = 0;
  let loss = 0;
  let gradNorm = 0;
  let lossMetrics: ReturnType<typeof grpoLoss>['metrics'] | null = null;
  for (let it = 0; it < cfg.num_iterations && step + taken < maxSteps; it++) {
    // The loss needs the current log-probs before its gradient: a forward pass, then the backward one.
    const cur = await policy.score(batch, 'current');
    const l = grpoLoss(
      {
        numSequences: batch.B,
        seqLen: batch.S,
        logpNew: cur.logprobs,
        logpOld,
        logpRef,
        mask: batch.lossMask,
        advantages: adv.advantages,
        terminated,
        entropy: cur.entropy,
      },
      grpoLossConfigOf(cfg),
    );
    const { grads } = await policy.gradients(batch, l.grad, step + taken);
    gradNorm = clipGradNorm(grads, cfg.grad_clip);
    taken += 1;
    opt.step(grads, lr(step + taken));
    loss = l.loss;
    lossMetrics = l.metrics;
  }
  const reward = combined.reduce((a, b) => a + b, 0) / combined.length;
  Object.assign(metrics, {
    loss,
    reward,
    reward_std: adv.stats.batchRewardStd,
    frac_reward_zero_std: adv.stats.fracZeroStdGroups,
    kl: lossMetrics?.meanKl ?? 0,
    entropy: lossMetrics?.meanEntropy ?? 0,
    clip_ratio: lossMetrics?.regionClipFraction ?? 0,
    completion_length: completions.reduce((a, c) => a + c.length, 0) / completions.length,
    grad_norm: gradNorm,
    lr: lr(step + taken),
    rollout_ms: tRollout - t0,
    step_ms: performance.now() - t0,
  });
  return { steps: taken, metrics, completions, rewards: combined };
}
