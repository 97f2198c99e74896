// Checking a set of named tensors against the parameter table, and a plain reader for a folder
// holding one float32 model.safetensors (the general Hugging Face folder loader — shards, F16/BF16,
// later parameter names — lives in src/hf).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensors } from '../../export/safetensors.ts';
import { parseQwen2VLConfig, type Qwen2VLConfig } from './config.ts';
import { qwen2VLParamTable, type Qwen2VLWeights } from './params.ts';

export class Qwen2VLWeightsError extends Error {
  override name = 'Qwen2VLWeightsError';
}

/**
 * Every parameter of the table must be present with its HF shape. `lm_head.weight` is accepted and
 * ignored when the embeddings are tied (some exporters write it anyway); other extra names are errors
 * only with `strict`.
 */
export function checkQwen2VLWeights(c: Qwen2VLConfig, tensors: ReadonlyMap<string, { shape: readonly number[] }>, where = 'weights', strict = false): void {
  const table = qwen2VLParamTable(c);
  for (const p of table) {
    const t = tensors.get(p.name);
    if (!t) throw new Qwen2VLWeightsError(`${where}: tensor ${p.name} is missing (expected shape [${p.shape.join(', ')}])`);
    if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
      throw new Qwen2VLWeightsError(`${where}: tensor ${p.name} has shape [${t.shape.join(', ')}], expected [${p.shape.join(', ')}]`);
    }
  }
  if (strict) {
    const known = new Set(table.map((p) => p.name));
    if (c.text.tieWordEmbeddings) known.add('lm_head.weight');
    for (const name of tensors.keys()) if (!known.has(name)) throw new Qwen2VLWeightsError(`${where}: unexpected tensor ${name}`);
  }
}

/** config.json + a single float32 model.safetensors. */
export async function readQwen2VLFolderF32(dir: string): Promise<{ config: Qwen2VLConfig; weights: Qwen2VLWeights }> {
  const configPath = join(dir, 'config.json');
  const config = parseQwen2VLConfig(JSON.parse(await readFile(configPath, 'utf8')), configPath);
  const file = join(dir, 'model.safetensors');
  const { tensors } = await readSafetensors(file);
  const shapes = new Map(Object.entries(tensors).map(([k, v]) => [k, { shape: v.shape }]));
  checkQwen2VLWeights(config, shapes, file);
  const weights: Qwen2VLWeights = new Map();
  for (const p of qwen2VLParamTable(config)) {
    const t = tensors[p.name];
    if (t.dtype !== 'F32') throw new Qwen2VLWeightsError(`${file}: tensor ${p.name} is ${t.dtype}; this reader takes F32 only`);
    weights.set(p.name, t.data);
  }
  return { config, weights };
}
