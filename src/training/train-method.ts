// `method` of a fine-tune, as requests, config files and CLIs write it:
//   {"type": "full"}                                        every weight trained
//   {"type": "lora", "r", "lora_alpha", "target_modules",   a LoRA adapter with PEFT's names and
//    "lora_dropout"?, "exclude_modules"?, "use_rslora"?}     defaults (engine/lora/config.ts)
import { LoraConfigError, parseLoraConfig } from '../engine/lora/config.ts';
import type { TrainMethod } from './qwen2-vl-policy.ts';

export class TrainMethodError extends Error {
  override name = 'TrainMethodError';
}

const LORA_KEYS = new Set(['type', 'r', 'lora_alpha', 'lora_dropout', 'target_modules', 'exclude_modules', 'use_rslora', 'init_lora_weights']);

export function parseTrainMethod(raw: unknown): TrainMethod {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new TrainMethodError('method must be an object with "type": "full" or "lora"');
  const m = raw as Record<string, unknown>;
  if (m.type === 'full') {
    const extra = Object.keys(m).filter((k) => k !== 'type');
    if (extra.length) throw new TrainMethodError(`method "full" takes no other fields (got ${extra.join(', ')})`);
    return { type: 'full' };
  }
  if (m.type !== 'lora') throw new TrainMethodError(`method.type must be "full" or "lora", got ${JSON.stringify(m.type)}`);
  const unknown = Object.keys(m).filter((k) => !LORA_KEYS.has(k));
  if (unknown.length) throw new TrainMethodError(`method "lora": unknown field(s) ${unknown.join(', ')}`);
  try {
    return { type: 'lora', lora: parseLoraConfig(m) };
  } catch (err) {
    if (err instanceof LoraConfigError) throw new TrainMethodError(`method: ${err.message}`);
    throw err;
  }
}
