// Which modules of a model get an adapter, decided from its parameter table (HF weight names and
// shapes) the way PEFT decides it on the loaded torch model:
//
//   - a module is a weight's name without ".weight" ("model.layers.0.self_attn.q_proj"); every dotted
//     prefix of a parameter name is a module too ("model.layers.0.self_attn", "model.layers");
//   - a list target matches a module path exactly or as its trailing components (key == t or
//     key.endswith("." + t)); a string target is a regex that must match the whole path;
//     "all-linear" is every linear layer except the output layer (`lm_head`);
//   - a target that hits a module LoRA cannot wrap (a container such as "mlp", a norm, an
//     embedding here) is an error, as it is in PEFT; so is a target list that matches nothing.
//
// Linear weights are [out, in]. A convolution weight [out, c, k…] (Qwen2-VL's Conv3d patch embed, hit
// by the suffix "proj") is adapted as PEFT does it, with lora_A a convolution of the same kernel,
// which is the linear map on the flattened [c·k…] patch; its tensors keep PEFT's shapes on disk.
import { ALL_LINEAR, LoraConfigError, type LoraConfig } from './config.ts';

export interface ParamEntry {
  name: string;
  shape: readonly number[];
  /** An architecture's own label; "embedding" marks a lookup table (otherwise told by name). */
  kind?: string;
}

export type ModuleKind = 'linear' | 'conv' | 'embedding';

export interface LoraTarget {
  /** The module path, e.g. "model.layers.0.self_attn.q_proj". */
  module: string;
  /** The base weight it adapts: `${module}.weight`. */
  weight: string;
  kind: 'linear' | 'conv';
  /** The base weight's shape as stored ([out, in] or [out, c, k…]). */
  weightShape: readonly number[];
  inFeatures: number;
  outFeatures: number;
  /** Tensor names without PEFT's "base_model.model." prefix; also the graph input names. */
  aName: string;
  bName: string;
}

export interface TargetOptions {
  /** Module names (matched like list targets) that are embeddings, not linear layers. */
  embeddingModules?: readonly string[];
  /** The output layer that "all-linear" leaves out (PEFT: model.get_output_embeddings()). */
  outputModule?: string;
}

const DEFAULT_EMBEDDINGS = ['embed_tokens'];
const DEFAULT_OUTPUT = 'lm_head';

function suffixMatch(key: string, names: readonly string[]): boolean {
  return names.some((t) => key === t || key.endsWith(`.${t}`));
}

function fullMatch(key: string, pattern: string): boolean {
  return new RegExp(`^(?:${pattern})$`).test(key);
}

function matches(key: string, spec: readonly string[] | string): boolean {
  return typeof spec === 'string' ? fullMatch(key, spec) : suffixMatch(key, spec);
}

interface ModuleInfo {
  path: string;
  /** Present when the module owns a `.weight`. */
  weightShape?: readonly number[];
  kind?: ModuleKind | 'other';
}

function moduleTable(params: readonly ParamEntry[], embeddings: readonly string[]): Map<string, ModuleInfo> {
  const modules = new Map<string, ModuleInfo>();
  for (const p of params) {
    const parts = p.name.split('.');
    for (let i = 1; i < parts.length; i++) {
      const path = parts.slice(0, i).join('.');
      if (!modules.has(path)) modules.set(path, { path });
    }
    if (parts.length > 1 && parts[parts.length - 1] === 'weight') {
      const info = modules.get(parts.slice(0, -1).join('.'))!;
      info.weightShape = p.shape;
      const embedding = p.kind === 'embedding' || suffixMatch(info.path, embeddings);
      info.kind = p.shape.length < 2 ? 'other' : embedding ? 'embedding' : p.shape.length === 2 ? 'linear' : 'conv';
    }
  }
  return modules;
}

function describe(info: ModuleInfo): string {
  if (info.kind === undefined) return 'a container of other modules';
  if (info.kind === 'other') return `a module whose weight has shape [${info.weightShape!.join(', ')}] (a norm, not a linear layer)`;
  return `an ${info.kind} (LoRA here adapts linear and convolution layers only)`;
}

/**
 * The adapted modules, in the order their weights appear in `params`. Throws a LoraConfigError that
 * names the module when a target cannot be adapted, and lists the targets when nothing matches.
 */
export function selectLoraTargets(
  params: readonly ParamEntry[],
  config: Pick<LoraConfig, 'target_modules' | 'exclude_modules'>,
  opts: TargetOptions = {},
): LoraTarget[] {
  const embeddings = opts.embeddingModules ?? DEFAULT_EMBEDDINGS;
  const output = opts.outputModule ?? DEFAULT_OUTPUT;
  const modules = moduleTable(params, embeddings);
  const allLinear = typeof config.target_modules === 'string' && config.target_modules.toLowerCase() === ALL_LINEAR;
  const excluded = (path: string) => config.exclude_modules !== null && matches(path, config.exclude_modules);

  const chosen: LoraTarget[] = [];
  for (const info of modules.values()) {
    if (excluded(info.path)) continue;
    if (allLinear) {
      if (info.kind !== 'linear' || info.path === output) continue;
    } else if (!matches(info.path, config.target_modules)) continue;
    if (info.kind !== 'linear' && info.kind !== 'conv') {
      throw new LoraConfigError(`target_modules selects "${info.path}", which is ${describe(info)}`);
    }
    const shape = info.weightShape!;
    const inFeatures = shape.slice(1).reduce((a, b) => a * b, 1);
    chosen.push({
      module: info.path,
      weight: `${info.path}.weight`,
      kind: info.kind,
      weightShape: shape,
      inFeatures,
      outFeatures: shape[0],
      aName: `${info.path}.lora_A.weight`,
      bName: `${info.path}.lora_B.weight`,
    });
  }
  if (chosen.length === 0) {
    const what = typeof config.target_modules === 'string' ? config.target_modules : `[${config.target_modules.join(', ')}]`;
    throw new LoraConfigError(`target_modules ${what} matches no linear layer of the model`);
  }
  return chosen;
}

/** PEFT's on-disk shapes: lora_A [r, in] (or [r, c, k…] for a convolution), lora_B [out, r] (or [out, r, 1…]). */
export function adapterShapes(target: LoraTarget, r: number): { a: number[]; b: number[] } {
  if (target.kind === 'linear') return { a: [r, target.inFeatures], b: [target.outFeatures, r] };
  const kernelRank = target.weightShape.length - 2;
  return { a: [r, ...target.weightShape.slice(1)], b: [target.outFeatures, r, ...new Array<number>(kernelRank).fill(1)] };
}
