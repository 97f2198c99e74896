// generation_config.json: the ids that end a reply and the decoding defaults the model was published
// with. Absent file: the eos id of config.json, greedy. `eos_token_id` may be one id or a list.
import { join } from 'node:path';
import { HfFolderError } from './errors.ts';
import { readOptionalJsonFile, type JsonRecord } from './json-file.ts';

export const GENERATION_CONFIG_FILE = 'generation_config.json';

export interface GenerationDefaults {
  /** Any of these ends a reply. */
  eosTokenIds: number[];
  padTokenId?: number;
  bosTokenId?: number;
  /** 0 when the folder asks for greedy decoding (do_sample false or absent). */
  temperature: number;
  topP: number;
  topK?: number;
  repetitionPenalty: number;
  maxNewTokens?: number;
}

function ids(value: unknown, field: string, path: string): number[] {
  if (value === undefined || value === null) return [];
  const list = Array.isArray(value) ? value : [value];
  for (const id of list) {
    if (!Number.isSafeInteger(id) || (id as number) < 0) {
      throw new HfFolderError(`${path}: ${field} must be a token id or a list of them, got ${JSON.stringify(value)}`, path);
    }
  }
  return list as number[];
}

function optionalNumber(json: JsonRecord, field: string, path: string, check: (v: number) => boolean): number | undefined {
  const value = json[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !check(value)) throw new HfFolderError(`${path}: ${field} has the invalid value ${JSON.stringify(value)}`, path);
  return value;
}

/** Reads generation_config.json; `modelConfig` (config.json) supplies the ids when it is absent. */
export async function readGenerationDefaults(dir: string, modelConfig: JsonRecord): Promise<GenerationDefaults> {
  const path = join(dir, GENERATION_CONFIG_FILE);
  const json = (await readOptionalJsonFile(dir, GENERATION_CONFIG_FILE)) ?? {};
  const configPath = join(dir, 'config.json');
  const textConfig = (modelConfig.text_config ?? {}) as JsonRecord;
  const fallback = (field: string) => modelConfig[field] ?? textConfig[field];
  const eos = json.eos_token_id !== undefined ? ids(json.eos_token_id, 'eos_token_id', path) : ids(fallback('eos_token_id'), 'eos_token_id', configPath);
  const single = (field: string): number | undefined => {
    const fromJson = json[field] !== undefined ? ids(json[field], field, path) : ids(fallback(field), field, configPath);
    return fromJson[0];
  };
  const doSample = json.do_sample === true;
  const temperature = optionalNumber(json, 'temperature', path, (v) => v >= 0 && Number.isFinite(v));
  const topP = optionalNumber(json, 'top_p', path, (v) => v > 0 && v <= 1);
  const topK = optionalNumber(json, 'top_k', path, (v) => Number.isSafeInteger(v) && v >= 0);
  const maxNewTokens = optionalNumber(json, 'max_new_tokens', path, (v) => Number.isSafeInteger(v) && v > 0);
  const pad = single('pad_token_id');
  const bos = single('bos_token_id');
  return {
    eosTokenIds: eos,
    ...(pad !== undefined ? { padTokenId: pad } : {}),
    ...(bos !== undefined ? { bosTokenId: bos } : {}),
    // transformers' default temperature is 1.0 when sampling.
    temperature: doSample ? (temperature ?? 1) : 0,
    topP: doSample ? (topP ?? 1) : 1,
    ...(doSample && topK !== undefined && topK > 0 ? { topK } : {}),
    repetitionPenalty: optionalNumber(json, 'repetition_penalty', path, (v) => v > 0) ?? 1,
    ...(maxNewTokens !== undefined ? { maxNewTokens } : {}),
  };
}
