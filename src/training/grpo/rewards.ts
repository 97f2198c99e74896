// GRPO reward functions, TRL style: pure `(completions, cases) -> number[]`, one reward per completion,
// `cases[i]` being the case completion i answers. `NaN` means "not applicable to this sample" and is skipped
// by `combineRewards` (TRL's `None` + nansum).

import { scoreAnswer } from '../../eval/answer-match.ts';
import { countWords, extractAnswer, extractThink, isWellFormatted } from '../../eval/completion-format.ts';
import type { SemanticJudge } from './semantic-judge.ts';
import type { EvalCase } from '../../eval/metrics.ts';

export type { SemanticJudge } from './semantic-judge.ts';

/** The case a completion answers: what evaluation scores, plus the question category. */
export interface RewardCase extends Omit<EvalCase, 'dataset'> {
  contentType?: string;
  questionType?: string;
}

export type RewardFunction = (completions: readonly string[], cases: readonly RewardCase[]) => number[];
export type AsyncRewardFunction = (completions: readonly string[], cases: readonly RewardCase[]) => Promise<number[]>;

function checkAligned(completions: readonly string[], cases: readonly RewardCase[]): void {
  if (completions.length !== cases.length) {
    throw new Error(`reward: ${completions.length} completions but ${cases.length} cases`);
  }
}

/** Answer credit from `scoreAnswer`: closed 0/1, open 1 or token-F1. No answer block -> 0. */
export const accuracyReward: RewardFunction = (completions, cases) => {
  checkAligned(completions, cases);
  return completions.map((completion, i) => {
    const answer = extractAnswer(completion);
    return answer === null ? 0 : scoreAnswer(answer, cases[i]!).credit;
  });
};

/** 1 iff exactly one think block then exactly one answer block, nothing else but whitespace. */
export const formatReward: RewardFunction = (completions, cases) => {
  checkAligned(completions, cases);
  return completions.map((c) => (isWellFormatted(c) ? 1 : 0));
};

export interface LengthRewardOptions {
  /**
   * 'ecr' (excessive-chain reward): rewards longer think blocks whatever the answer.
   * 'cwr' (correct-answer weighted): the same reward, but only for completions whose answer is correct
   * (`scoreAnswer(...).correct`: a full match, token-F1 partial credit does not count), so the policy
   * cannot buy reward with long wrong reasoning.
   */
  mode: 'ecr' | 'cwr';
  /** Think-block length in whitespace words at which the reward reaches 1; it rises linearly from 0 words. */
  targetWords: number;
  /**
   * Think blocks longer than this many words earn 0: the reward favours longer chains only up to the cap,
   * so padding a chain without bound is not rewarded. Must be >= targetWords. Default: no cap.
   */
  capWords?: number;
}

/** The length score of one think block: min(words / target, 1), and 0 beyond the cap. Exported for logging. */
export function lengthScore(thinkWords: number, targetWords: number, capWords = Number.POSITIVE_INFINITY): number {
  if (thinkWords > capWords) return 0;
  return Math.min(thinkWords / targetWords, 1);
}

/**
 * Length reward over the think block (no think block -> 0). `ecr`: `lengthScore`; `cwr`: `lengthScore` for
 * correct answers, 0 otherwise. Words, not tokens, so the reward does not change with the tokenizer.
 */
export function makeLengthReward({ mode, targetWords, capWords }: LengthRewardOptions): RewardFunction {
  if (mode !== 'ecr' && mode !== 'cwr') throw new Error(`length reward: mode must be 'ecr' or 'cwr', got ${String(mode)}`);
  if (!(Number.isFinite(targetWords) && targetWords > 0)) throw new Error(`length reward: targetWords must be > 0, got ${targetWords}`);
  if (capWords !== undefined && !(capWords >= targetWords)) {
    throw new Error(`length reward: capWords (${capWords}) must be >= targetWords (${targetWords})`);
  }
  return (completions, cases) => {
    checkAligned(completions, cases);
    return completions.map((completion, i) => {
      const think = extractThink(completion);
      const score = think === null ? 0 : lengthScore(countWords(think), targetWords, capWords);
      if (mode === 'ecr' || score === 0) return score;
      const answer = extractAnswer(completion);
      return answer !== null && scoreAnswer(answer, cases[i]!).correct ? score : 0;
    });
  };
}

export interface SemanticRewardOptions {
  /** Judge calls in flight at once (a remote judge should not be hit with a whole batch at once). Default 8. */
  concurrency?: number;
  /** 'throw' (default) fails the step on a judge error; 'nan' marks the sample "not applicable". */
  onJudgeError?: 'throw' | 'nan';
}

/** The judge's 0/1 verdict per completion. Async because a judge may be remote. */
export function makeSemanticReward(judge: SemanticJudge, options: SemanticRewardOptions = {}): AsyncRewardFunction {
  const { concurrency = 8, onJudgeError = 'throw' } = options;
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new Error(`semantic reward: bad concurrency ${concurrency}`);
  return async (completions, cases) => {
    checkAligned(completions, cases);
    const out = new Array<number>(completions.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < completions.length) {
        const i = next++;
        try {
          out[i] = await judge.judge(completions[i]!, cases[i]!);
        } catch (err) {
          if (onJudgeError === 'throw') throw err;
          out[i] = Number.NaN;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, completions.length) }, worker));
    return out;
  };
}

/**
 * Weighted sum over reward functions per completion, skipping NaN ("not applicable") entries like TRL's
 * nansum; a completion with every entry NaN gets 0. Functions without a weight get 1 (TRL's default).
 */
export function combineRewards(perFunc: Readonly<Record<string, readonly number[]>>, weights: Readonly<Record<string, number>> = {}): number[] {
  const names = Object.keys(perFunc);
  for (const name of Object.keys(weights)) {
    if (!(name in perFunc)) throw new Error(`combineRewards: weight for unknown reward "${name}"`);
  }
  if (names.length === 0) return [];
  const n = perFunc[names[0]!]!.length;
  for (const name of names) {
    if (perFunc[name]!.length !== n) throw new Error(`combineRewards: "${name}" has ${perFunc[name]!.length} rewards, expected ${n}`);
  }
  const total = new Array<number>(n).fill(0);
  for (const name of names) {
    const w = weights[name] ?? 1;
    const values = perFunc[name]!;
    for (let i = 0; i < n; i++) if (!Number.isNaN(values[i]!)) total[i] += w * values[i]!;
  }
  return total;
}
