// GRPO knobs (names follow TRL's GRPOConfig where one exists, so TRL users recognise them). Every factor of the
// paper's study is one of these: `init` (initialisation), `reward_funcs` with `semantic`
// (medical semantic alignment), `length_mode` ecr|cwr (length rewards), `loss_type` and
// `scale_rewards` (GRPO's normalisation bias vs Dr. GRPO).
import type { LossType } from './loss.ts';
import type { ScaleRewards } from './advantages.ts';
import { DEFAULT_TRAIN_SPLITS, DEFAULT_VALIDATION_SPLITS } from '../config-file.ts';

export type RewardName = 'accuracy' | 'format' | 'length' | 'semantic';
export const REWARD_NAMES: readonly RewardName[] = ['accuracy', 'format', 'length', 'semantic'];

export interface GrpoConfig {
  preset: string;
  tokenizer: string;
  /** 'scratch', a checkpoint directory or a model package directory; also the KL reference. */
  init: string;
  train: string[];
  validation: string[];
  num_generations: number;
  /** Prompts per optimizer step; the generation batch is prompts_per_step × num_generations. */
  prompts_per_step: number;
  temperature: number;
  top_p: number;
  max_completion_length: number;
  beta: number;
  epsilon: number;
  /** Upper clip (DAPO's clip-higher); null = epsilon. */
  epsilon_high: number | null;
  num_iterations: number;
  loss_type: LossType;
  scale_rewards: ScaleRewards;
  mask_truncated_completions: boolean;
  reward_funcs: RewardName[];
  /** One weight per reward function, same order; empty = all 1. */
  reward_weights: number[];
  length_mode: 'ecr' | 'cwr';
  length_target_words: number;
  length_cap_words: number;
  /** 'embedded' = the rule-based grounding judge; otherwise an OpenAI-compatible base URL. */
  semantic_judge: string;
  /** Model name sent to an external judge (its API key comes from CLINVQA_JUDGE_API_KEY). */
  semantic_judge_model: string;
  learning_rate: number;
  warmup: number;
  min_lr_ratio: number;
  weight_decay: number;
  grad_clip: number;
  max_steps: number;
  seed: number;
  checkpoint_every: number;
  /** Validation cases evaluated at the end (0 = all). */
  eval_samples: number;
  /** Evaluate on those validation cases every N steps (0 = only at the end). */
  eval_every: number;
  /** Package the weights of the evaluation with the best overall accuracy, not the last step's. */
  select_best: boolean;
  /** Rollouts (and the loss) see a randomly zoomed/shifted, brightness/contrast-jittered copy of each image. */
  augment_images: boolean;
  /**
   * Keep the vision encoder (`vision.*`) as the init left it; only the projector and the language
   * model learn. Policy gradients are noisy, and on our small model they erode image features that
   * the SFT stage learned (answers that name the wrong body region); VLM RL recipes often freeze
   * the vision tower for the same reason.
   */
  freeze_vision: boolean;
  threads: number;
  /**
   * A Hugging Face base folder (model_type qwen2_vl) to fine-tune instead of `init`/`preset`; empty =
   * today's family. With a base, `method` says how ({"type": "full"} or {"type": "lora", ...}).
   */
  base: string;
  method: Record<string, unknown>;
  out: string;
  package_dir: string;
  package_version: string;
}

export const GRPO_DEFAULTS: GrpoConfig = {
  preset: 'small',
  tokenizer: 'assets/tokenizer.json',
  init: 'models/clinvqa-sft',
  train: DEFAULT_TRAIN_SPLITS,
  validation: DEFAULT_VALIDATION_SPLITS,
  num_generations: 4,
  prompts_per_step: 8,
  temperature: 1.0,
  top_p: 1.0,
  max_completion_length: 48,
  beta: 0.04,
  epsilon: 0.2,
  epsilon_high: null,
  num_iterations: 1,
  loss_type: 'dr_grpo',
  scale_rewards: 'none',
  mask_truncated_completions: false,
  reward_funcs: ['accuracy', 'format', 'semantic'],
  reward_weights: [],
  length_mode: 'ecr',
  length_target_words: 30,
  length_cap_words: 60,
  semantic_judge: 'embedded',
  semantic_judge_model: '',
  learning_rate: 5e-5,
  warmup: 10,
  min_lr_ratio: 0.1,
  weight_decay: 0.0,
  grad_clip: 1.0,
  max_steps: 200,
  seed: 1,
  checkpoint_every: 25,
  eval_samples: 0,
  eval_every: 0,
  select_best: false,
  augment_images: false,
  freeze_vision: false,
  threads: 0,
  base: '',
  method: { type: 'full' },
  out: 'runs/grpo',
  package_dir: '',
  package_version: '1.0.0',
};

export function validateGrpoConfig(c: GrpoConfig): void {
  if (!Number.isInteger(c.num_generations) || c.num_generations < 2) throw new Error('num_generations must be an integer >= 2');
  if (!(c.num_iterations >= 1)) throw new Error('num_iterations must be >= 1');
  if (!['grpo', 'dr_grpo', 'dapo'].includes(c.loss_type)) throw new Error(`loss_type must be grpo, dr_grpo or dapo, got ${c.loss_type}`);
  if (!['group', 'batch', 'none'].includes(c.scale_rewards)) throw new Error(`scale_rewards must be group, batch or none, got ${c.scale_rewards}`);
  if (!['ecr', 'cwr'].includes(c.length_mode)) throw new Error(`length_mode must be ecr or cwr, got ${c.length_mode}`);
  for (const r of c.reward_funcs) if (!REWARD_NAMES.includes(r)) throw new Error(`unknown reward function ${r} (known: ${REWARD_NAMES.join(', ')})`);
  if (c.reward_weights.length && c.reward_weights.length !== c.reward_funcs.length) throw new Error('reward_weights needs one weight per reward function');
  if (c.reward_funcs.length === 0) throw new Error('reward_funcs is empty');
  if (!Number.isInteger(c.eval_every) || c.eval_every < 0) throw new Error('eval_every must be an integer >= 0');
  if (c.select_best && c.eval_every === 0) throw new Error('select_best needs eval_every > 0 (there is nothing to select from)');
}
