// The configured reward functions, by name, with their weights: the one place that maps config
// words (accuracy, format, length ecr|cwr, semantic embedded|URL) to reward implementations.
import { loadToolConfig } from '../../config.ts';
import type { GrpoConfig } from './grpo-config.ts';
import { accuracyReward, formatReward, makeLengthReward, makeSemanticReward, type RewardCase } from './rewards.ts';
import { RuleBasedSemanticJudge, type SemanticJudge } from './semantic-judge.ts';
import { OpenAiCompatibleJudge } from './openai-judge.ts';

export interface NamedReward {
  name: string;
  weight: number;
  fn(completions: readonly string[], cases: readonly RewardCase[]): number[] | Promise<number[]>;
}

function judgeFor(cfg: GrpoConfig): SemanticJudge {
  if (cfg.semantic_judge === 'embedded') return new RuleBasedSemanticJudge();
  return new OpenAiCompatibleJudge({ baseUrl: cfg.semantic_judge, model: cfg.semantic_judge_model, apiKey: loadToolConfig().judgeApiKey });
}

export function buildRewardFunctions(cfg: GrpoConfig): NamedReward[] {
  return cfg.reward_funcs.map((name, i) => {
    const weight = cfg.reward_weights[i] ?? 1;
    switch (name) {
      case 'accuracy':
        return { name, weight, fn: accuracyReward };
      case 'format':
        return { name, weight, fn: formatReward };
      case 'length':
        return {
          name: `length_${cfg.length_mode}`,
          weight,
          fn: makeLengthReward({ mode: cfg.length_mode, targetWords: cfg.length_target_words, capWords: cfg.length_cap_words }),
        };
      case 'semantic':
        return { name, weight, fn: makeSemanticReward(judgeFor(cfg)) };
    }
  });
}
