// LoRA hyperparameters with PEFT's names, defaults and meaning (peft.LoraConfig), so that a config
// written here reads the same to Python peft and a config from there trains the same here.
//
//   r                 rank of the update ΔW = scale · B·A, with A [r, in] and B [out, r]
//   lora_alpha        scale = lora_alpha / r (or lora_alpha / √r with use_rslora)
//   lora_dropout      dropout on the adapter's input only (the base path never sees it)
//   target_modules    a list of module names, each matching a module path exactly or as its last
//                     dot-separated components ("q_proj" matches "model.layers.0.self_attn.q_proj");
//                     or ONE string: a regular expression that must match the whole path, or
//                     "all-linear" (every linear layer except the output layer)
//   exclude_modules   the same forms; a module matching it is never adapted
//   init_lora_weights true: A Kaiming-uniform, B zeros (the update starts at 0); "gaussian": A normal
//                     with std 1/r, B zeros; false: both as a fresh nn.Linear (the update starts non-zero)

export type InitLoraWeights = boolean | 'gaussian';

export interface LoraConfig {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: readonly string[] | string;
  exclude_modules: readonly string[] | string | null;
  use_rslora: boolean;
  init_lora_weights: InitLoraWeights;
}

/** The options a caller may leave out; values are PEFT's defaults. */
export const LORA_DEFAULTS = {
  lora_alpha: 8,
  lora_dropout: 0,
  exclude_modules: null,
  use_rslora: false,
  init_lora_weights: true,
} as const satisfies Partial<LoraConfig>;

/** PEFT's shorthand for "every linear layer but the output layer". */
export const ALL_LINEAR = 'all-linear';

export class LoraConfigError extends Error {
  override name = 'LoraConfigError';
}

function moduleList(value: unknown, key: string): readonly string[] | string {
  if (typeof value === 'string') {
    if (value.length === 0) throw new LoraConfigError(`${key} must not be an empty string`);
    if (value.toLowerCase() !== ALL_LINEAR) {
      try {
        new RegExp(value);
      } catch (err) {
        throw new LoraConfigError(`${key} "${value}" is not a valid regular expression: ${(err as Error).message}`);
      }
    }
    return value;
  }
  if (!Array.isArray(value) || value.length === 0 || !value.every((m) => typeof m === 'string' && m.length > 0)) {
    throw new LoraConfigError(`${key} must be a non-empty list of module names or one regular-expression string`);
  }
  // PEFT keeps these as a set: order carries no meaning, so the canonical form is sorted.
  return [...new Set(value as string[])].sort();
}

/**
 * Checks and completes a LoRA config (from a request, a CLI or adapter_config.json). Unknown keys
 * are the caller's business; the known ones must be well-formed.
 */
export function parseLoraConfig(input: Record<string, unknown>): LoraConfig {
  const r = input.r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw new LoraConfigError(`r must be a positive integer, got ${JSON.stringify(r)}`);
  const alpha = input.lora_alpha ?? LORA_DEFAULTS.lora_alpha;
  if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha <= 0) {
    throw new LoraConfigError(`lora_alpha must be a positive number, got ${JSON.stringify(alpha)}`);
  }
  const dropout = input.lora_dropout ?? LORA_DEFAULTS.lora_dropout;
  if (typeof dropout !== 'number' || !(dropout >= 0 && dropout < 1)) {
    throw new LoraConfigError(`lora_dropout must be in [0, 1), got ${JSON.stringify(dropout)}`);
  }
  if (input.target_modules === undefined || input.target_modules === null) {
    throw new LoraConfigError('target_modules is required (module names such as ["q_proj", "v_proj"], a regex, or "all-linear")');
  }
  const targets = moduleList(input.target_modules, 'target_modules');
  const exclude = input.exclude_modules === undefined || input.exclude_modules === null ? null : moduleList(input.exclude_modules, 'exclude_modules');
  if (typeof exclude === 'string' && exclude.toLowerCase() === ALL_LINEAR) throw new LoraConfigError('exclude_modules cannot be "all-linear"');
  const rslora = input.use_rslora ?? LORA_DEFAULTS.use_rslora;
  if (typeof rslora !== 'boolean') throw new LoraConfigError('use_rslora must be true or false');
  const init = input.init_lora_weights ?? LORA_DEFAULTS.init_lora_weights;
  if (init !== true && init !== false && init !== 'gaussian') {
    throw new LoraConfigError(`init_lora_weights must be true, false or "gaussian", got ${JSON.stringify(init)}`);
  }
  return { r, lora_alpha: alpha, lora_dropout: dropout, target_modules: targets, exclude_modules: exclude, use_rslora: rslora, init_lora_weights: init };
}

/** The factor on B·A: lora_alpha / r, or lora_alpha / √r for rank-stabilised LoRA. */
export function loraScale(config: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora'>): number {
  return config.use_rslora ? config.lora_alpha / Math.sqrt(config.r) : config.lora_alpha / config.r;
}
