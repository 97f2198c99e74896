// The `hyperparameters` of a fine-tune request: the GRPO trainer's knob names plus `max_steps` and
// `eval_samples`, with defaults sized for a hospital's upload of tens to hundreds of cases. Paths,
// thread counts and output locations are the server's business, so a request cannot set them.
import { GRPO_DEFAULTS, validateGrpoConfig, type GrpoConfig } from '../training/grpo/grpo-config.ts';

/** GrpoConfig keys a request may not set: where things are read and written, and the CPU share. */
// `base` and `method` (fine-tuning an HF base folder) are the trainer's CLI options; a request names its
// base by model id, and the admin route does not train HF bases yet, so neither is a hyperparameter.
const SERVER_OWNED = ['preset', 'tokenizer', 'init', 'train', 'validation', 'out', 'package_dir', 'package_version', 'threads', 'base', 'method'] as const;
type ServerOwned = (typeof SERVER_OWNED)[number];

export type FineTuneHyperparameters = Omit<GrpoConfig, ServerOwned>;

/**
 * Defaults that work on a small upload: a short run (a few minutes of one CPU thread on the small
 * preset), frequent checkpoints so a crash loses little, and a standard-validation sample large
 * enough to see a change but quick to score twice.
 */
export const FINE_TUNE_DEFAULTS: FineTuneHyperparameters = (() => {
  const {
    preset: _p,
    tokenizer: _t,
    init: _i,
    train: _tr,
    validation: _v,
    out: _o,
    package_dir: _pd,
    package_version: _pv,
    threads: _th,
    base: _b,
    method: _m,
    ...rest
  } = GRPO_DEFAULTS;
  return {
    ...rest,
    max_steps: 60,
    prompts_per_step: 4,
    num_generations: 4,
    learning_rate: 2e-5,
    warmup: 5,
    checkpoint_every: 5,
    eval_samples: 200,
  };
})();

const LIMITS: Partial<Record<keyof FineTuneHyperparameters, [number, number, boolean]>> = {
  // [min, max, integer]
  max_steps: [1, 100_000, true],
  checkpoint_every: [1, 100_000, true],
  num_generations: [2, 64, true],
  prompts_per_step: [1, 256, true],
  max_completion_length: [4, 512, true],
  num_iterations: [1, 16, true],
  eval_samples: [0, 100_000, true],
  eval_every: [0, 100_000, true],
  seed: [0, 2 ** 31 - 1, true],
  warmup: [0, 100_000, true],
  temperature: [0, 10, false],
  top_p: [0, 1, false],
  learning_rate: [0, 1, false],
  beta: [0, 100, false],
  epsilon: [0, 10, false],
  min_lr_ratio: [0, 1, false],
  weight_decay: [0, 10, false],
  grad_clip: [0, 1e6, false],
  length_target_words: [1, 10_000, true],
  length_cap_words: [1, 10_000, true],
};

/** One reason a hyperparameters object is refused, located by a JSON pointer. */
export interface HyperparameterProblem {
  path: string;
  message: string;
}

export class HyperparameterError extends Error {
  override readonly name = 'HyperparameterError';
  constructor(readonly problems: HyperparameterProblem[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('; '));
  }
}

const kind = (v: unknown): string => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);

/** Overlays a request's hyperparameters on the defaults; throws HyperparameterError listing every problem. */
export function resolveHyperparameters(given: unknown): FineTuneHyperparameters {
  if (given === undefined) return { ...FINE_TUNE_DEFAULTS };
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    throw new HyperparameterError([{ path: '/hyperparameters', message: 'must be a JSON object' }]);
  }
  const problems: HyperparameterProblem[] = [];
  const out: Record<string, unknown> = { ...FINE_TUNE_DEFAULTS };
  for (const [key, value] of Object.entries(given)) {
    const at = `/hyperparameters/${key}`;
    if ((SERVER_OWNED as readonly string[]).includes(key)) {
      problems.push({ path: at, message: 'is set by the server and cannot be given' });
      continue;
    }
    if (!(key in FINE_TUNE_DEFAULTS)) {
      problems.push({ path: at, message: `unknown hyperparameter (known: ${Object.keys(FINE_TUNE_DEFAULTS).join(', ')})` });
      continue;
    }
    const fallback = (FINE_TUNE_DEFAULTS as unknown as Record<string, unknown>)[key];
    // epsilon_high is number|null; everything else keeps its default's JSON type.
    const okType = key === 'epsilon_high' ? value === null || typeof value === 'number' : kind(value) === kind(fallback);
    if (!okType) {
      problems.push({ path: at, message: `must be ${key === 'epsilon_high' ? 'a number or null' : kind(fallback)}, got ${kind(value)}` });
      continue;
    }
    const limit = LIMITS[key as keyof FineTuneHyperparameters];
    if (limit && typeof value === 'number') {
      const [min, max, integer] = limit;
      if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
        problems.push({ path: at, message: `must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}` });
        continue;
      }
    }
    if (Array.isArray(value) && value.length > 16) {
      problems.push({ path: at, message: 'has too many entries' });
      continue;
    }
    out[key] = value;
  }
  if (problems.length === 0) {
    try {
      validateGrpoConfig({ ...GRPO_DEFAULTS, ...(out as unknown as FineTuneHyperparameters) });
    } catch (error) {
      problems.push({ path: '/hyperparameters', message: (error as Error).message });
    }
  }
  if (problems.length > 0) throw new HyperparameterError(problems);
  return out as unknown as FineTuneHyperparameters;
}
