// adapter_config.json as Python peft writes it for LoRA: every LoraConfig field, keys sorted, two-space
// indent (PeftConfigMixin.save_pretrained: json.dumps(..., indent=2, sort_keys=True)). The key set is
// that of peft 0.18.1, whose version the file names; peft ≥ 0.14 ignores keys it does not know and fills
// ones it lacks with defaults, so older and newer releases read it too.
//
// Reading accepts any such file and refuses, by name, the LoRA variants this engine does not run
// (DoRA, bias training, modules_to_save, per-layer ranks, …) instead of silently training or serving
// something else.
import { parseLoraConfig, type LoraConfig } from './config.ts';

export const PEFT_FORMAT_VERSION = '0.18.1';

export interface PeftMeta {
  base_model_name_or_path: string | null;
  /** peft.TaskType; Qwen2-VL fine-tunes use "CAUSAL_LM". */
  task_type: string | null;
}

export function peftConfigJson(config: LoraConfig, meta: PeftMeta): string {
  const target = typeof config.target_modules === 'string' ? config.target_modules : [...config.target_modules].sort();
  const exclude = config.exclude_modules === null || typeof config.exclude_modules === 'string' ? config.exclude_modules : [...config.exclude_modules].sort();
  const fields: Record<string, unknown> = {
    alora_invocation_tokens: null,
    alpha_pattern: {},
    arrow_config: null,
    auto_mapping: null,
    base_model_name_or_path: meta.base_model_name_or_path,
    bias: 'none',
    corda_config: null,
    ensure_weight_tying: false,
    eva_config: null,
    exclude_modules: exclude,
    fan_in_fan_out: false,
    // PeftModel.save_pretrained always writes inference_mode true.
    inference_mode: true,
    init_lora_weights: config.init_lora_weights,
    layer_replication: null,
    layers_pattern: null,
    layers_to_transform: null,
    loftq_config: {},
    lora_alpha: config.lora_alpha,
    lora_bias: false,
    lora_dropout: config.lora_dropout,
    megatron_config: null,
    megatron_core: 'megatron.core',
    modules_to_save: null,
    peft_type: 'LORA',
    peft_version: PEFT_FORMAT_VERSION,
    qalora_group_size: 16,
    r: config.r,
    rank_pattern: {},
    revision: null,
    target_modules: target,
    target_parameters: null,
    task_type: meta.task_type,
    trainable_token_indices: null,
    use_dora: false,
    use_qalora: false,
    use_rslora: config.use_rslora,
  };
  const sorted = Object.fromEntries(
    Object.keys(fields)
      .sort()
      .map((k) => [k, fields[k]]),
  );
  return JSON.stringify(sorted, null, 2);
}

function isEmpty(v: unknown): boolean {
  if (v === undefined || v === null || v === false) return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === 'object') return Object.keys(v as object).length === 0;
  return false;
}

/** Options that change what the adapter computes; any of them set means "not a plain LoRA". */
const UNSUPPORTED: [key: string, what: string][] = [
  ['use_dora', 'DoRA'],
  ['lora_bias', 'a trained bias on lora_B'],
  ['modules_to_save', 'fully trained extra modules (modules_to_save)'],
  ['rank_pattern', 'per-module ranks (rank_pattern)'],
  ['alpha_pattern', 'per-module alphas (alpha_pattern)'],
  ['layers_to_transform', 'a layer subset (layers_to_transform)'],
  ['layer_replication', 'layer replication'],
  ['trainable_token_indices', 'trainable token embeddings'],
  ['target_parameters', 'LoRA on bare parameters (target_parameters)'],
  ['alora_invocation_tokens', 'activated LoRA (alora_invocation_tokens)'],
  ['use_qalora', 'QA-LoRA'],
  ['fan_in_fan_out', 'transposed (Conv1D) base weights (fan_in_fan_out)'],
];

export interface ParsedPeftConfig {
  config: LoraConfig;
  meta: PeftMeta;
}

/** Reads adapter_config.json text; `file` only labels errors. */
export function parsePeftConfig(text: string, file: string): ParsedPeftConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file}: not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${file}: must be a JSON object`);
  const json = raw as Record<string, unknown>;
  if (json.peft_type !== 'LORA') throw new Error(`${file}: peft_type is ${JSON.stringify(json.peft_type)}, only "LORA" adapters are supported`);
  for (const [key, what] of UNSUPPORTED) {
    if (!isEmpty(json[key])) throw new Error(`${file}: ${key} = ${JSON.stringify(json[key])} asks for ${what}, which this engine does not support`);
  }
  if (json.bias !== undefined && json.bias !== 'none') throw new Error(`${file}: bias = ${JSON.stringify(json.bias)}; only "none" is supported`);
  if (typeof json.init_lora_weights === 'string' && json.init_lora_weights !== 'gaussian') {
    // pissa/olora/loftq/eva/corda initialisations rewrite the base weights; the adapter then only
    // makes sense with that rewritten base.
    throw new Error(`${file}: init_lora_weights = ${JSON.stringify(json.init_lora_weights)} changes the base weights; not supported`);
  }
  let config: LoraConfig;
  try {
    config = parseLoraConfig(json);
  } catch (err) {
    throw new Error(`${file}: ${(err as Error).message}`);
  }
  const base = json.base_model_name_or_path;
  const task = json.task_type;
  return {
    config,
    meta: {
      base_model_name_or_path: typeof base === 'string' ? base : null,
      task_type: typeof task === 'string' ? task : null,
    },
  };
}
