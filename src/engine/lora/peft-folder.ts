// A LoRA adapter as a PEFT folder: adapter_config.json + adapter_model.safetensors, the layout
// PeftModel.save_pretrained writes and PeftModel.from_pretrained reads.
//
// Tensor names are `base_model.model.<module>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r]
// (F32), with the adapter name ("default") stripped as PEFT strips it on save. <module> is the
// module's path in the PUBLIC checkpoint naming (`model.layers.N…`, `visual.blocks.N…`, `lm_head`):
// that form loads with every transformers release — natively before 4.52, through
// `_checkpoint_conversion_mapping` from 4.52 (peft ≥ 0.15.2 maps old adapter keys onto the
// restructured VLMs), and through peft's transformers-v5 weight conversion — while adapters written
// with the later `model.language_model.…` / `model.visual.…` paths do not load with transformers < 4.52.
// Reading accepts both spellings and maps the later one back to the public names.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../../files/durable-file.ts';
import { readSafetensors, writeSafetensors, type SafetensorsTensors } from '../export/safetensors.ts';
import type { Weights } from '../model/params.ts';
import type { LoraConfig } from './config.ts';
import { parsePeftConfig, peftConfigJson, type PeftMeta } from './peft-config.ts';
import { adapterShapes, selectLoraTargets, type LoraTarget, type ParamEntry, type TargetOptions } from './targets.ts';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';
export const PEFT_PREFIX = 'base_model.model.';

/** Later transformers' module paths for Qwen2-VL → the public checkpoint's. */
export const MODULE_ALIASES: readonly (readonly [string, string])[] = [
  ['model.language_model.', 'model.'],
  ['model.visual.', 'visual.'],
];

export class AdapterFolderError extends Error {
  override name = 'AdapterFolderError';
}

export interface LoraAdapter {
  config: LoraConfig;
  meta: PeftMeta;
  targets: LoraTarget[];
  /** Keyed by target.aName / target.bName, flat row-major. */
  weights: Weights;
}

/** The safetensors tensors of an adapter, named and shaped as PEFT saves them. */
export function peftTensors(adapter: Pick<LoraAdapter, 'config' | 'targets' | 'weights'>): SafetensorsTensors {
  const tensors: SafetensorsTensors = {};
  for (const t of adapter.targets) {
    const shapes = adapterShapes(t, adapter.config.r);
    for (const [local, shape] of [
      [t.aName, shapes.a],
      [t.bName, shapes.b],
    ] as const) {
      const data = adapter.weights.get(local);
      if (!data) throw new AdapterFolderError(`adapter tensor ${local} is missing`);
      const count = shape.reduce((a, b) => a * b, 1);
      if (data.length !== count) throw new AdapterFolderError(`adapter tensor ${local} has ${data.length} values, shape [${shape.join(', ')}] needs ${count}`);
      tensors[PEFT_PREFIX + local] = { dtype: 'F32', shape: [...shape], data };
    }
  }
  return tensors;
}

/** Writes the folder (created if needed); each file lands atomically. */
export async function saveAdapterFolder(dir: string, adapter: LoraAdapter): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, ADAPTER_WEIGHTS_FILE), peftTensors(adapter), { format: 'pt' });
  await writeFileDurably(join(dir, ADAPTER_CONFIG_FILE), peftConfigJson(adapter.config, adapter.meta));
}

function publicModule(module: string, aliases: readonly (readonly [string, string])[]): string {
  for (const [from, to] of aliases) if (module.startsWith(from)) return to + module.slice(from.length);
  return module;
}

export interface LoadAdapterOptions extends TargetOptions {
  moduleAliases?: readonly (readonly [string, string])[];
}

/**
 * Reads a PEFT LoRA folder and checks it against the base model's parameter table: every tensor must
 * belong to a module the config targets in this base, with PEFT's shape for it, and every targeted
 * module must have both A and B. Errors name the file, the tensor and the shapes.
 */
export async function loadAdapterFolder(dir: string, baseParams: readonly ParamEntry[], opts: LoadAdapterOptions = {}): Promise<LoraAdapter> {
  const configPath = join(dir, ADAPTER_CONFIG_FILE);
  const weightsPath = join(dir, ADAPTER_WEIGHTS_FILE);
  let configText: string;
  try {
    configText = await readFile(configPath, 'utf8');
  } catch (err) {
    throw new AdapterFolderError(`${configPath}: cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let parsed: ReturnType<typeof parsePeftConfig>;
  try {
    parsed = parsePeftConfig(configText, configPath);
  } catch (err) {
    throw new AdapterFolderError((err as Error).message);
  }
  const { config, meta } = parsed;
  let targets: LoraTarget[];
  try {
    targets = selectLoraTargets(baseParams, config, opts);
  } catch (err) {
    throw new AdapterFolderError(`${configPath}: ${(err as Error).message} in the base model`);
  }
  let file: Awaited<ReturnType<typeof readSafetensors>>;
  try {
    file = await readSafetensors(weightsPath);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new AdapterFolderError(code ? `${weightsPath}: cannot be read (${code})` : (err as Error).message);
  }

  const expected = new Map<string, { target: LoraTarget; shape: number[] }>();
  for (const t of targets) {
    const shapes = adapterShapes(t, config.r);
    expected.set(t.aName, { target: t, shape: shapes.a });
    expected.set(t.bName, { target: t, shape: shapes.b });
  }
  const aliases = opts.moduleAliases ?? MODULE_ALIASES;
  const weights: Weights = new Map();
  for (const [name, tensor] of Object.entries(file.tensors)) {
    if (!name.startsWith(PEFT_PREFIX)) throw new AdapterFolderError(`${weightsPath}: tensor "${name}" does not start with "${PEFT_PREFIX}"`);
    const m = /^(.*)\.(lora_A|lora_B)\.weight$/.exec(name.slice(PEFT_PREFIX.length));
    if (!m) throw new AdapterFolderError(`${weightsPath}: tensor "${name}" is not a LoRA lora_A/lora_B weight`);
    const local = `${publicModule(m[1], aliases)}.${m[2]}.weight`;
    const want = expected.get(local);
    if (!want) {
      throw new AdapterFolderError(`${weightsPath}: tensor "${name}" belongs to a module that target_modules does not select in the base model`);
    }
    if (weights.has(local)) throw new AdapterFolderError(`${weightsPath}: tensor "${name}" appears twice (under both module spellings)`);
    if (tensor.shape.length !== want.shape.length || tensor.shape.some((d, i) => d !== want.shape[i])) {
      throw new AdapterFolderError(
        `${weightsPath}: tensor "${name}" has shape [${tensor.shape.join(', ')}], expected [${want.shape.join(', ')}] (r = ${config.r}, base ${want.target.weight} [${want.target.weightShape.join(', ')}])`,
      );
    }
    if (tensor.dtype === 'F32') weights.set(local, tensor.data);
    else if (tensor.dtype === 'F64') weights.set(local, Float32Array.from(tensor.data));
    else throw new AdapterFolderError(`${weightsPath}: tensor "${name}" has dtype ${tensor.dtype}; F32 or F64 expected`);
  }
  for (const local of expected.keys()) {
    if (!weights.has(local)) throw new AdapterFolderError(`${weightsPath}: tensor "${PEFT_PREFIX}${local}" is missing`);
  }
  return { config, meta, targets, weights };
}
