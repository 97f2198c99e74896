// The model's parameters: their names, shapes and initialisation, and where a graph gets them
// from. The same model code builds a training graph (parameters are graph inputs, so new weights
// need no rebuild) and serving graphs (parameters are initializers baked into the file).
import type { Graph, Value } from '../graph/builder.ts';
import { rng } from '../random.ts';

export type InitKind = 'normal' | 'zeros' | 'ones' | 'normal_scaled';

export interface ParamSpec {
  name: string;
  shape: number[];
  init: InitKind;
  /** AdamW skips weight decay on gains, biases and position tables. */
  decay: boolean;
}

export type Weights = Map<string, Float32Array>;

/** Hands out parameters to the model code and records their specs in order of first use. */
export class ParamSource {
  readonly specs: ParamSpec[] = [];
  readonly values = new Map<string, Value>();

  constructor(
    readonly graph: Graph,
    private readonly mode: { kind: 'inputs' } | { kind: 'initializers'; weights: Weights },
  ) {}

  get(name: string, shape: number[], init: InitKind, decay = init === 'normal' || init === 'normal_scaled'): Value {
    const existing = this.values.get(name);
    if (existing) return existing;
    const g = this.graph;
    let v: Value;
    if (this.mode.kind === 'inputs') {
      v = g.input(name, g.floatType, shape);
    } else {
      const w = this.mode.weights.get(name);
      if (!w) throw new Error(`weights: ${name} is missing`);
      const data = g.floatType === 'float64' ? Float64Array.from(w) : w;
      v = g.initializer(name, g.floatType, shape, data);
    }
    this.specs.push({ name, shape, init, decay });
    this.values.set(name, v);
    return v;
  }
}

export function gaussian(rand: () => number): () => number {
  return () => {
    const u = Math.max(rand(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
  };
}

/**
 * GPT-2 style initialisation: N(0, 0.02) for weights, residual output projections scaled by
 * 1/sqrt(2·layers) so the residual stream does not grow with depth.
 */
export function initWeights(specs: ParamSpec[], seed: number, residualLayers: number): Weights {
  const normal = gaussian(rng(seed));
  const out: Weights = new Map();
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const w = new Float32Array(n);
    if (s.init === 'ones') w.fill(1);
    else if (s.init !== 'zeros') {
      const std = s.init === 'normal_scaled' ? 0.02 / Math.sqrt(2 * residualLayers) : 0.02;
      for (let i = 0; i < n; i++) w[i] = normal() * std;
    }
    out.set(s.name, w);
  }
  return out;
}
