// Which architecture a folder's config.json names. HF tools choose the model class by `model_type`
// (AutoConfig) and fall back to the class names in `architectures`; so does this. The entries come
// from the caller (the engine's architecture registrations), so this module knows no model.
import { join } from 'node:path';
import { HfFolderError } from './errors.ts';
import type { JsonRecord } from './json-file.ts';

export interface ArchitectureKey {
  /** `model_type` in config.json, e.g. `qwen2_vl`. */
  readonly modelType: string;
  /** Model classes in `architectures` that this entry serves, e.g. `Qwen2VLForConditionalGeneration`. */
  readonly hfClasses: readonly string[];
}

/** The entry `config` names; throws an "unsupported architecture" HfFolderError naming config.json. */
export function pickArchitecture<A extends ArchitectureKey>(dir: string, config: JsonRecord, entries: readonly A[]): A {
  const path = join(dir, 'config.json');
  const modelType = config.model_type;
  const classes = Array.isArray(config.architectures) ? config.architectures.filter((c): c is string => typeof c === 'string') : [];
  const byType = typeof modelType === 'string' ? entries.find((e) => e.modelType === modelType) : undefined;
  const found = byType ?? (modelType === undefined ? entries.find((e) => classes.some((c) => e.hfClasses.includes(c))) : undefined);
  if (found) return found;
  const supported = entries.map((e) => `${e.modelType} (${e.hfClasses.join(', ')})`).join('; ');
  throw new HfFolderError(
    `${path}: unsupported architecture: model_type ${JSON.stringify(modelType ?? null)}, architectures ${JSON.stringify(classes)}; ` +
      `this server supports ${supported || 'none'}`,
    path,
  );
}
