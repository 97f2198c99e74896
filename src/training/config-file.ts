// Trainer configs are YAML (or JSON) files; every knob has a default and an unknown key is an error,
// so a typo cannot silently train with the default.
import { readFile } from 'node:fs/promises';
import YAML from 'yaml';

/** The shared data's train and validation splits, relative to the repository root. */
export const DEFAULT_TRAIN_SPLITS = ['../shared/data/vqa-rad/train.jsonl', '../shared/data/slake/train.jsonl'];
export const DEFAULT_VALIDATION_SPLITS = ['../shared/data/vqa-rad/validation.jsonl', '../shared/data/slake/validation.jsonl'];

export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  const doc = YAML.parse(await readFile(path, 'utf8')) as unknown;
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new Error(`${path}: the config must be a mapping`);
  return doc as Record<string, unknown>;
}

/** Overlays `given` on `defaults`, refusing unknown keys and values of the wrong JSON type. */
export function withDefaults<T extends object>(defaults: T, given: Record<string, unknown>, what: string): T {
  const out = { ...defaults } as Record<string, unknown>;
  for (const [key, value] of Object.entries(given)) {
    if (!(key in defaults)) throw new Error(`${what}: unknown key "${key}" (known: ${Object.keys(defaults).join(', ')})`);
    const d = (defaults as Record<string, unknown>)[key];
    const kind = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);
    if (d !== null && value !== null && kind(d) !== kind(value)) throw new Error(`${what}: "${key}" must be ${kind(d)}, got ${kind(value)}`);
    out[key] = value;
  }
  return out as T;
}
