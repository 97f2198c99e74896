// SFT knobs, each with its default. Paths are relative to the working directory (the repository root).
import { DEFAULT_TRAIN_SPLITS, DEFAULT_VALIDATION_SPLITS } from '../config-file.ts';
import type { TraceMode } from '../examples.ts';

export interface SftConfig {
  preset: string;
  tokenizer: string;
  /** 'scratch', a checkpoint directory or a model package directory. */
  init: string;
  train: string[];
  validation: string[];
  trace: TraceMode;
  epochs: number;
  batch_size: number;
  learning_rate: number;
  /** Linear warmup, in optimizer steps. */
  warmup: number;
  min_lr_ratio: number;
  weight_decay: number;
  /** Longest text (prompt + completion) in tokens; longer examples are skipped. */
  max_length: number;
  grad_clip: number;
  seed: number;
  checkpoint_every: number;
  /** Validation cases scored at the end, evenly spread over the splits (0 = all). */
  eval_samples: number;
  threads: number;
  /** Run directory: log.jsonl and checkpoints. */
  out: string;
  /** Where the finished model package goes (directory named after its id); '' = no package. */
  package_dir: string;
  package_version: string;
  /** Stop after this many optimizer steps (0 = run all epochs); for smoke tests. */
  max_steps: number;
}

export const SFT_DEFAULTS: SftConfig = {
  preset: 'small',
  tokenizer: 'assets/tokenizer.json',
  init: 'scratch',
  train: DEFAULT_TRAIN_SPLITS,
  validation: DEFAULT_VALIDATION_SPLITS,
  trace: 'grounded',
  epochs: 10,
  batch_size: 16,
  learning_rate: 1e-3,
  warmup: 100,
  min_lr_ratio: 0.1,
  weight_decay: 0.1,
  max_length: 160,
  grad_clip: 1.0,
  seed: 1,
  checkpoint_every: 200,
  eval_samples: 0,
  threads: 0,
  out: 'runs/sft',
  package_dir: '',
  package_version: '1.0.0',
  max_steps: 0,
};
