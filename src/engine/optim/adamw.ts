// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization") over named Float32Array
// parameters, updated in place. Follows PyTorch's torch.optim.AdamW so hyperparameters carry over:
//
//   p ← p · (1 − lr·λ)                       (decoupled decay, skipped for parameters flagged off)
//   m ← β1·m + (1 − β1)·g
//   v ← β2·v + (1 − β2)·g²
//   p ← p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
//
// The step count t is shared by all parameters, so every step must supply a gradient for every
// parameter; freeze a parameter by leaving it out of the optimizer rather than omitting its gradient.

export type NamedArrays = ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>;

export interface AdamWOptions {
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8. */
  eps?: number;
  /** Decoupled decay coefficient λ, scaled by lr at each step. Default 0.01 (PyTorch's default). */
  weightDecay?: number;
  /**
   * Which parameters weight decay applies to; default all. Pass a predicate or the set of names to
   * exclude, typically biases, norm gains and (if so configured) embeddings.
   */
  noWeightDecay?: ((name: string) => boolean) | Iterable<string>;
}

/** Optimizer state for checkpoints: plain typed arrays, ready to be stored as safetensors F32 tensors. */
export interface AdamWState {
  /** Number of steps taken so far (t of the last step). */
  step: number;
  m: Record<string, Float32Array>;
  v: Record<string, Float32Array>;
}

interface Slot {
  name: string;
  param: Float32Array;
  m: Float32Array;
  v: Float32Array;
  decay: boolean;
}

function entriesOf(arrays: NamedArrays): [string, Float32Array][] {
  return arrays instanceof Map ? [...arrays.entries()] : Object.entries(arrays as Record<string, Float32Array>);
}

function checkHyperparameter(name: string, value: number, lo: number, hi: number, hiInclusive: boolean): void {
  if (!Number.isFinite(value) || value < lo || (hiInclusive ? value > hi : value >= hi)) {
    throw new RangeError(`AdamW ${name} must be in [${lo}, ${hi}${hiInclusive ? ']' : ')'}, got ${value}`);
  }
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  private readonly slots: Slot[];
  private readonly byName = new Map<string, Slot>();
  private t = 0;

  /** `params` are updated in place by `step`; the optimizer keeps references, not copies. */
  constructor(params: NamedArrays, options: AdamWOptions = {}) {
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
    checkHyperparameter('beta1', this.beta1, 0, 1, false);
    checkHyperparameter('beta2', this.beta2, 0, 1, false);
    checkHyperparameter('eps', this.eps, 0, Infinity, false);
    checkHyperparameter('weightDecay', this.weightDecay, 0, Infinity, false);

    const skip = options.noWeightDecay;
    const skipSet = skip === undefined || typeof skip === 'function' ? undefined : new Set(skip);
    const decays = (name: string): boolean => (typeof skip === 'function' ? !skip(name) : !(skipSet?.has(name) ?? false));

    this.slots = entriesOf(params).map(([name, param]) => {
      if (!(param instanceof Float32Array)) throw new TypeError(`AdamW parameter "${name}" must be a Float32Array`);
      return { name, param, m: new Float32Array(param.length), v: new Float32Array(param.length), decay: decays(name) };
    });
    for (const slot of this.slots) this.byName.set(slot.name, slot);
    if (skipSet !== undefined) {
      // A name that matches nothing is almost certainly a typo that would silently decay a bias.
      for (const name of skipSet) {
        if (!this.byName.has(name)) throw new Error(`AdamW noWeightDecay names unknown parameter "${name}"`);
      }
    }
  }

  /** Steps taken so far. */
  get stepCount(): number {
    return this.t;
  }

  /** Whether decoupled weight decay applies to the named parameter. */
  decays(name: string): boolean {
    const slot = this.byName.get(name);
    if (slot === undefined) throw new Error(`AdamW has no parameter "${name}"`);
    return slot.decay;
  }

  /**
   * Applies one update with learning rate `lr`. `grads` must hold exactly one gradient per parameter,
   * of the same length; everything is checked before any parameter changes.
   */
  step(grads: NamedArrays, lr: number): void {
    if (!Number.isFinite(lr) || lr < 0) throw new RangeError(`AdamW learning rate must be finite and >= 0, got ${lr}`);
    const ordered = this.matchGradients(grads);

    const t = this.t + 1;
    const { beta1: b1, beta2: b2, eps } = this;
    const c1 = 1 - b1;
    const c2 = 1 - b2;
    const stepSize = lr / (1 - b1 ** t);
    const invSqrtBc2 = 1 / Math.sqrt(1 - b2 ** t);
    const decayFactor = 1 - lr * this.weightDecay;

    for (let s = 0; s < this.slots.length; s++) {
      const { param: p, m, v, decay } = this.slots[s]!;
      const g = ordered[s]!;
      const keep = decay ? decayFactor : 1;
      // One fused pass in float64. The moments are rounded to float32 before they are used, so the
      // update is computed from exactly the state a checkpoint stores (and PyTorch keeps in float32).
      for (let i = 0, n = p.length; i < n; i++) {
        const gi = g[i]!;
        const mi = Math.fround(b1 * m[i]! + c1 * gi);
        const vi = Math.fround(b2 * v[i]! + c2 * gi * gi);
        m[i] = mi;
        v[i] = vi;
        // eps outside the square root, after bias correction, as torch.optim.AdamW.
        p[i] = p[i]! * keep - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
      }
    }
    this.t = t;
  }

  private matchGradients(grads: NamedArrays): Float32Array[] {
    const byName = new Map(entriesOf(grads));
    const ordered: Float32Array[] = [];
    for (const slot of this.slots) {
      const g = byName.get(slot.name);
      if (g === undefined) throw new Error(`AdamW step: missing gradient for parameter "${slot.name}"`);
      if (!(g instanceof Float32Array)) throw new TypeError(`AdamW step: gradient for "${slot.name}" must be a Float32Array`);
      if (g.length !== slot.param.length) {
        throw new Error(`AdamW step: gradient for "${slot.name}" has ${g.length} elements, parameter has ${slot.param.length}`);
      }
      ordered.push(g);
    }
    if (byName.size !== this.slots.length) {
      const unknown = [...byName.keys()].filter((name) => !this.byName.has(name));
      throw new Error(`AdamW step: gradients for unknown parameters: ${unknown.join(', ')}`);
    }
    return ordered;
  }

  /** Copies of the moments and the step count, for checkpointing. */
  exportState(): AdamWState {
    const m: Record<string, Float32Array> = {};
    const v: Record<string, Float32Array> = {};
    for (const slot of this.slots) {
      m[slot.name] = slot.m.slice();
      v[slot.name] = slot.v.slice();
    }
    return { step: this.t, m, v };
  }

  /** Restores state from `exportState` (copied in); names and lengths must match this optimizer. */
  importState(state: AdamWState): void {
    if (!Number.isSafeInteger(state.step) || state.step < 0) {
      throw new Error(`AdamW state: step must be a non-negative integer, got ${state.step}`);
    }
    for (const [label, moments] of [
      ['m', state.m],
      ['v', state.v],
    ] as const) {
      const names = Object.keys(moments);
      if (names.length !== this.slots.length || !names.every((name) => this.byName.has(name))) {
        throw new Error(`AdamW state: ${label} has parameters [${names.join(', ')}], optimizer has [${this.slots.map((s) => s.name).join(', ')}]`);
      }
      for (const slot of this.slots) {
        const arr = moments[slot.name]!;
        if (!(arr instanceof Float32Array) || arr.length !== slot.param.length) {
          throw new Error(`AdamW state: ${label}["${slot.name}"] must be a Float32Array of ${slot.param.length} elements`);
        }
      }
    }
    for (const slot of this.slots) {
      slot.m.set(state.m[slot.name]!);
      slot.v.set(state.v[slot.name]!);
    }
    this.t = state.step;
  }
}
