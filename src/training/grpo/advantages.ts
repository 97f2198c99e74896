// Group-relative advantages for GRPO, matching TRL's GRPOTrainer:
//
//   A = r - mean(group)                                       scale_rewards = 'none'  (Dr. GRPO)
//   A = (r - mean(group)) / (std(group) + 1e-4)               scale_rewards = 'group' (GRPO)
//   A = (r - mean(group)) / (std(all rewards) + 1e-4)         scale_rewards = 'batch'
//
// Std convention: TRL uses `torch.std`, which is the UNBIASED sample std (divides by n - 1), for both the
// per-group and the whole-batch std. We do the same, so advantages and the 1e-4 epsilon interact exactly as
// in TRL (with G = 2 and rewards {0, 1}, std = 0.7071, not 0.5). The batch std is over the raw rewards,
// not the group-centred ones.
//
// Rewards arrive flat, B prompts x G generations, each prompt's G generations consecutive (TRL layout).

export type ScaleRewards = 'group' | 'batch' | 'none';

export const ADVANTAGE_STD_EPSILON = 1e-4;
/** A group's std counts as zero below this (torch.isclose(std, 0) with its default atol = 1e-8). */
const ZERO_STD_TOLERANCE = 1e-8;

export interface AdvantageStats {
  numGroups: number;
  /**
   * Fraction of prompts whose G rewards are all equal: they contribute no learning signal. Always per
   * group, also for scale_rewards='batch' (where TRL's frac_reward_zero_std tests the batch std instead).
   */
  fracZeroStdGroups: number;
  meanReward: number;
  /** Unbiased std of all rewards in the batch. */
  batchRewardStd: number;
  groupMeans: number[];
  /** Unbiased std per group. */
  groupStds: number[];
}

export interface AdvantageResult {
  advantages: number[];
  stats: AdvantageStats;
}

function mean(xs: ArrayLike<number>, start: number, end: number): number {
  let s = 0;
  for (let i = start; i < end; i++) s += xs[i]!;
  return s / (end - start);
}

/** Unbiased (n - 1) standard deviation, as torch.std. Requires end - start >= 2. */
function unbiasedStd(xs: ArrayLike<number>, start: number, end: number): number {
  const m = mean(xs, start, end);
  let ss = 0;
  for (let i = start; i < end; i++) ss += (xs[i]! - m) ** 2;
  return Math.sqrt(ss / (end - start - 1));
}

export function computeAdvantages(rewards: ArrayLike<number>, numGenerations: number, scaleRewards: ScaleRewards): AdvantageResult {
  const n = rewards.length;
  // GRPO needs >= 2 generations per prompt: with one, there is no group to be relative to (and the
  // unbiased std is undefined). TRL rejects num_generations < 2 for training too.
  if (!Number.isInteger(numGenerations) || numGenerations < 2) throw new Error(`numGenerations must be an integer >= 2, got ${numGenerations}`);
  if (n === 0 || n % numGenerations !== 0) throw new Error(`${n} rewards is not a positive multiple of numGenerations=${numGenerations}`);
  for (let i = 0; i < n; i++) if (!Number.isFinite(rewards[i]!)) throw new Error(`reward ${i} is not finite: ${rewards[i]}`);

  const numGroups = n / numGenerations;
  const groupMeans: number[] = [];
  const groupStds: number[] = [];
  for (let g = 0; g < numGroups; g++) {
    const start = g * numGenerations;
    groupMeans.push(mean(rewards, start, start + numGenerations));
    groupStds.push(unbiasedStd(rewards, start, start + numGenerations));
  }
  const batchRewardStd = unbiasedStd(rewards, 0, n);

  const advantages = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const g = Math.floor(i / numGenerations);
    const centred = rewards[i]! - groupMeans[g]!;
    if (scaleRewards === 'none') advantages[i] = centred;
    else if (scaleRewards === 'group') advantages[i] = centred / (groupStds[g]! + ADVANTAGE_STD_EPSILON);
    else if (scaleRewards === 'batch') advantages[i] = centred / (batchRewardStd + ADVANTAGE_STD_EPSILON);
    else throw new Error(`unknown scaleRewards: ${String(scaleRewards)}`);
  }

  const zeroStd = groupStds.filter((s) => s <= ZERO_STD_TOLERANCE).length;
  return {
    advantages,
    stats: {
      numGroups,
      fracZeroStdGroups: zeroStd / numGroups,
      meanReward: mean(rewards, 0, n),
      batchRewardStd,
      groupMeans,
      groupStds,
    },
  };
}
