// LoRA inside a graph: y = x·Wᵀ + b + scale·((dropout(x)·Aᵀ)·Bᵀ), PEFT's lora.Linear forward.
//
// An architecture definition builds its graph once and asks a LoraSource, at each linear layer, for
// that module's adapter; the frozen base weights stay wherever the definition keeps them (graph
// inputs fed from the one copy in memory, or initializers of a serving graph), and A/B are separate
// graph inputs, so only they need gradients and optimizer state. Serving an adapter on top of its
// base uses the same graph with A/B as initializers (or inputs, for several adapters on one base).
//
// Dropout draws its mask inside the graph from one int64 input, `lora_dropout_seed`, by a counter-based
// hash of (seed, layer, element index), not from ORT's random ops, whose generator state lives in the
// session: a step's result then depends only on its inputs, so a run resumed from a checkpoint (which
// feeds the same per-step seed) repeats exactly what the uninterrupted run did.
import type { Graph, TensorData, Value } from '../graph/builder.ts';
import { int, type Attr } from '../graph/types.ts';
import * as o from '../graph/ops.ts';
import type { Weights } from '../model/params.ts';
import { loraScale, type LoraConfig } from './config.ts';
import type { LoraTarget } from './targets.ts';

/** The shapes A and B have as graph values: [r, in] and [out, r] (a convolution's kernel flattened). */
export function adapterInputShapes(target: LoraTarget, r: number): { a: number[]; b: number[] } {
  return { a: [r, target.inFeatures], b: [target.outFeatures, r] };
}

export interface LoraAdapterValues {
  target: LoraTarget;
  /** [r, in] (a convolution's A flattened over its kernel). */
  a: Value;
  /** [out, r]. */
  b: Value;
  scale: number;
  /** Same shape as the layer's input, 0 or 1/(1−p); null = no dropout (evaluation, serving, lora_dropout 0). */
  dropoutMask: Value | null;
}

function flattenRows(x: Value, inDim: number): Value {
  return x.rank === 2 ? x : o.reshape(x, [-1, inDim]);
}

function restoreRows(rows: Value, like: Value, outDim: number): Value {
  if (like.rank === 2) return rows;
  const outShape = o.concat([o.slice(o.shapeOf(like), [0], [like.rank - 1], [0]), like.graph.constInts([outDim])], 0);
  return o.reshape(rows, outShape, [...like.shape.slice(0, -1), outDim]);
}

/**
 * The adapter's contribution scale·((dropout(x)·Aᵀ)·Bᵀ) for x [..., in] → [..., out]. Leading axes are
 * folded into one so each product is a single GEMM, as the base linear layers do.
 */
export function loraDelta(x: Value, ad: LoraAdapterValues): Value {
  const inDim = ad.target.inFeatures;
  const dropped = ad.dropoutMask ? o.mul(x, ad.dropoutMask) : x;
  const down = o.matmul(flattenRows(dropped, inDim), o.transpose(ad.a, [1, 0])); // [rows, r]
  // The scale goes on the rank-r product, the smaller of the two.
  const up = o.matmul(o.mul(down, ad.scale), o.transpose(ad.b, [1, 0])); // [rows, out]
  return restoreRows(up, x, ad.target.outFeatures);
}

export interface BaseLinear {
  weight: Value;
  bias?: Value | null;
  /** How `weight` is laid out: HF's [out, in] (default) or [in, out]. */
  layout?: 'out_in' | 'in_out';
}

/** x·Wᵀ + b, plus the adapter's delta when there is one. */
export function loraLinear(x: Value, base: BaseLinear, adapter: LoraAdapterValues | null): Value {
  const w = base.weight;
  const [inDim, outDim] = base.layout === 'in_out' ? [w.shape[0], w.shape[1]] : [w.shape[1], w.shape[0]];
  if (typeof inDim !== 'number' || typeof outDim !== 'number') throw new Error(`loraLinear: ${w.name} needs a static shape`);
  const wt = base.layout === 'in_out' ? w : o.transpose(w, [1, 0]);
  let rows = o.matmul(flattenRows(x, inDim), wt);
  if (base.bias) rows = o.add(rows, base.bias);
  let y = restoreRows(rows, x, outDim);
  if (adapter) {
    if (adapter.target.inFeatures !== inDim || adapter.target.outFeatures !== outDim) {
      throw new Error(
        `loraLinear: adapter for ${adapter.target.module} is [${adapter.target.outFeatures}, ${adapter.target.inFeatures}], base weight ${w.name} is [${outDim}, ${inDim}]`,
      );
    }
    y = o.add(y, loraDelta(x, adapter));
  }
  return y;
}

export type LoraSourceMode =
  /** Training: A and B are graph inputs; `dropout` (with lora_dropout > 0) adds the int64 input `lora_dropout_seed`. */
  | { kind: 'inputs'; dropout: boolean }
  /** Serving an unmerged adapter: A and B are baked in. */
  | { kind: 'initializers'; weights: Weights };

/** The graph input that seeds every adapter's dropout mask: int64, shape []. */
export const DROPOUT_SEED_INPUT = 'lora_dropout_seed';

// The mask hash works modulo the prime 2³¹−1, so every product of two residues fits in int64.
const HASH_PRIME = 2147483647;

function int64Op(op: 'Mod' | 'Mul' | 'Add', a: Value, b: Value | number): Value {
  const bb = typeof b === 'number' ? a.graph.constInts([b], true) : b;
  const attrs: Record<string, Attr> = op === 'Mod' ? { fmod: int(0) } : {};
  const shape = a.rank >= bb.rank ? a.shape : bb.shape;
  return a.graph.node(op, [a, bb], [{ dtype: 'int64', shape }], attrs)[0];
}
const mulMod = (a: Value, b: Value | number) => int64Op('Mod', int64Op('Mul', a, b), HASH_PRIME);
const addMod = (a: Value, b: Value | number) => int64Op('Mod', int64Op('Add', a, b), HASH_PRIME);

/**
 * Uniform [0, 1) per element of `like`, from (seed, salt, element index): a per-layer multiplier
 * m(seed, salt) scrambles the index (a bijection mod P, so a new seed is not a shifted old mask), then
 * two quadratic rounds mix it. Mirrored exactly by `dropoutUniformReference` for tests.
 */
function hashUniform(like: Value, seed: Value, salt: number): Value {
  const g = like.graph;
  const s0 = addMod(seed, salt);
  const s1 = addMod(mulMod(s0, 16807), 1);
  const m = int64Op('Add', int64Op('Mod', int64Op('Add', int64Op('Mul', s1, s1), 3), HASH_PRIME - 1), 1);
  const count = o.sizeOf(like);
  const idx = g.node(
    'Range',
    [g.constInts([1], true), int64Op('Add', count, 1), g.constInts([1], true)],
    [{ dtype: 'int64', shape: ['lora_mask_elements'] }],
  )[0];
  const h1 = mulMod(int64Op('Mod', idx, HASH_PRIME), m);
  const h2 = addMod(mulMod(h1, h1), 12345);
  const h3 = addMod(mulMod(h2, 48271), h1);
  const h4 = addMod(mulMod(h3, h3), 67890);
  const u = o.div(o.cast(h4, g.floatType), HASH_PRIME);
  return o.reshape(u, o.shapeOf(like), like.shape);
}

/** Inverted dropout's mask for `x`: 0 with probability p, else 1/(1−p). */
function dropoutMaskFor(x: Value, seed: Value, salt: number, p: number): Value {
  const g = x.graph;
  return o.where(o.less(hashUniform(x, seed, salt), p), g.constFloat(0), g.constFloat(1 / (1 - p)));
}

/** The salt of the i-th target (in target order), so each layer draws its own mask. */
export function dropoutSalt(targetIndex: number): number {
  return ((targetIndex + 1) * 1000003) % HASH_PRIME;
}

/** The value to feed as `lora_dropout_seed` at a step: a function of the run's seed and the step only. */
export function dropoutStepSeed(runSeed: number, step: number): bigint {
  return (BigInt(runSeed >>> 0) * 1000003n + BigInt(step)) % BigInt(HASH_PRIME);
}

/** The uniforms `hashUniform` draws, computed in BigInt (the reference the graph is tested against). */
export function dropoutUniformReference(seed: bigint, salt: number, count: number): number[] {
  const P = BigInt(HASH_PRIME);
  const s0 = (seed + BigInt(salt)) % P;
  const s1 = (s0 * 16807n + 1n) % P;
  const m = ((s1 * s1 + 3n) % (P - 1n)) + 1n;
  const out: number[] = [];
  for (let i = 1; i <= count; i++) {
    const h1 = ((BigInt(i) % P) * m) % P;
    const h2 = (h1 * h1 + 12345n) % P;
    const h3 = (h2 * 48271n + h1) % P;
    const h4 = (h3 * h3 + 67890n) % P;
    out.push(Number(h4) / HASH_PRIME);
  }
  return out;
}

/** Hands out each target module's adapter to the architecture code, and records what it handed out. */
export class LoraSource {
  readonly scale: number;
  private readonly byModule: Map<string, LoraTarget>;
  private readonly handed = new Map<string, LoraAdapterValues>();
  /** The `lora_dropout_seed` input, once a layer with dropout has asked for its adapter. */
  dropoutSeed: Value | null = null;

  constructor(
    readonly graph: Graph,
    readonly targets: readonly LoraTarget[],
    readonly config: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora' | 'lora_dropout'>,
    private readonly mode: LoraSourceMode,
  ) {
    this.scale = loraScale(config);
    this.byModule = new Map(targets.map((t) => [t.module, t]));
  }

  /** Whether `module` is adapted. */
  has(module: string): boolean {
    return this.byModule.has(module);
  }

  /**
   * The adapter of `module` for a layer whose input is `x`, or null when the module is not a target.
   * A module may be asked once: it is one layer of the network.
   */
  adapter(module: string, x: Value): LoraAdapterValues | null {
    const target = this.byModule.get(module);
    if (!target) return null;
    if (this.handed.has(module)) throw new Error(`LoRA: module ${module} was already given its adapter`);
    const g = this.graph;
    const { r } = this.config;
    const { a: aShape, b: bShape } = adapterInputShapes(target, r);
    let a: Value;
    let b: Value;
    let mask: Value | null = null;
    if (this.mode.kind === 'inputs') {
      a = g.input(target.aName, g.floatType, aShape);
      b = g.input(target.bName, g.floatType, bShape);
      if (this.mode.dropout && this.config.lora_dropout > 0) {
        this.dropoutSeed ??= g.input(DROPOUT_SEED_INPUT, 'int64', []);
        mask = dropoutMaskFor(x, this.dropoutSeed, dropoutSalt(this.targets.indexOf(target)), this.config.lora_dropout);
      }
    } else {
      a = g.initializer(target.aName, g.floatType, aShape, this.data(target.aName, r * target.inFeatures));
      b = g.initializer(target.bName, g.floatType, bShape, this.data(target.bName, target.outFeatures * r));
    }
    const values: LoraAdapterValues = { target, a, b, scale: this.scale, dropoutMask: mask };
    this.handed.set(module, values);
    return values;
  }

  /** `baseOut` (the layer's plain linear output for input `x`) plus the module's adapter delta, if any. */
  apply(module: string, x: Value, baseOut: Value): Value {
    const ad = this.adapter(module, x);
    return ad ? o.add(baseOut, loraDelta(x, ad)) : baseOut;
  }

  /** The targets the graph used; a target the architecture never asked for is an error for the caller. */
  unused(): LoraTarget[] {
    return this.targets.filter((t) => !this.handed.has(t.module));
  }

  /** The A and B graph values, in target order (what a training graph differentiates). */
  adapterValues(): Value[] {
    return [...this.handed.values()].flatMap((v) => [v.a, v.b]);
  }

  private data(name: string, count: number): TensorData {
    if (this.mode.kind !== 'initializers') throw new Error('unreachable');
    const w = this.mode.weights.get(name);
    if (!w) throw new Error(`LoRA weights: ${name} is missing`);
    if (w.length !== count) throw new Error(`LoRA weights: ${name} has ${w.length} values, expected ${count}`);
    return this.graph.floatType === 'float64' ? Float64Array.from(w) : w;
  }
}
