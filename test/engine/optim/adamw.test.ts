import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { AdamW } from '../../../src/engine/optim/adamw.ts';

interface RefParam {
  p: number[];
  m: number[];
  v: number[];
  decay: boolean;
}

/** Textbook AdamW in float64, written out independently of the implementation under test. */
function referenceStep(
  params: Record<string, RefParam>,
  grads: Record<string, number[]>,
  t: number,
  lr: number,
  h: { beta1: number; beta2: number; eps: number; weightDecay: number },
): void {
  for (const [name, s] of Object.entries(params)) {
    const g = grads[name]!;
    for (let i = 0; i < s.p.length; i++) {
      if (s.decay) s.p[i] = s.p[i]! - lr * h.weightDecay * s.p[i]!;
      s.m[i] = h.beta1 * s.m[i]! + (1 - h.beta1) * g[i]!;
      s.v[i] = h.beta2 * s.v[i]! + (1 - h.beta2) * g[i]! ** 2;
      const mHat = s.m[i]! / (1 - h.beta1 ** t);
      const vHat = s.v[i]! / (1 - h.beta2 ** t);
      s.p[i] = s.p[i]! - (lr * mHat) / (Math.sqrt(vHat) + h.eps);
    }
  }
}

/** Deterministic pseudo-random values, so failures reproduce. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: ${a} vs ${e}`);
  }
}

describe('AdamW', () => {
  it('matches a hand-computed first step', () => {
    // t=1: m̂ = g, v̂ = g², so the Adam part is lr·g/(|g|+eps) ≈ lr·sign(g); decay multiplies p by (1 − lr·λ).
    const w = Float32Array.from([1, -2]);
    const b = Float32Array.from([0.5]);
    const opt = new AdamW({ w, b }, { weightDecay: 0.1, noWeightDecay: ['b'] });
    opt.step({ w: Float32Array.from([0.3, -4]), b: Float32Array.from([2]) }, 0.01);
    // w0: 1·(1 − 0.001) − 0.01·0.3/(0.3 + 1e-8) = 0.999 − 0.00999999967 = 0.98900000033
    // w1: −2·0.999 + 0.01·4/(4 + 1e-8) = −1.998 + 0.0099999999750 = −1.988000000025
    // b0 (no decay): 0.5 − 0.01·2/(2 + 1e-8) = 0.49000000005
    assertClose(w, [0.98900000033, -1.988000000025], 1e-7, 'w');
    assertClose(b, [0.49000000005], 1e-7, 'b');
    assert.equal(opt.stepCount, 1);
  });

  it('matches three steps of torch.optim.AdamW worked out by hand', () => {
    // lr 0.1, weight_decay 0.1, betas (0.9, 0.999), eps 1e-8; p starts at 1, gradients 0.5, -0.25, 0.1.
    // t=1: p ← 1·(1 − 0.01) = 0.99; m = 0.05, v = 0.00025; m̂ = 0.05/0.1 = 0.5, v̂ = 0.00025/0.001 = 0.25
    //      p ← 0.99 − 0.1·0.5/(√0.25 + 1e-8) = 0.99 − 0.099999998 = 0.890000002
    // t=2: p ← 0.890000002·0.99 = 0.88110000198; m = 0.045 − 0.025 = 0.02, v = 0.00024975 + 0.0000625 = 0.00031225
    //      m̂ = 0.02/0.19 = 0.1052631579, v̂ = 0.00031225/0.001999 = 0.1562031016, √v̂ = 0.3952253809
    //      p ← 0.88110000198 − 0.1·0.1052631579/0.3952253809 = 0.88110000198 − 0.0266337033 = 0.8544662987
    // t=3: p ← 0.8544662987·0.99 = 0.8459216357; m = 0.018 + 0.01 = 0.028, v = 0.00031193775 + 0.00001 = 0.00032193775
    //      m̂ = 0.028/0.271 = 0.1033210332, v̂ = 0.00032193775/0.002997001 = 0.1074199675, √v̂ = 0.3277498551
    //      p ← 0.8459216357 − 0.1·0.1033210332/0.3277498551 = 0.8459216357 − 0.0315243557 = 0.8143972800
    const p = Float32Array.of(1);
    const opt = new AdamW({ p }, { weightDecay: 0.1 });
    const expected = [
      { p: 0.890000002, m: 0.05, v: 0.00025 },
      { p: 0.8544662987, m: 0.02, v: 0.00031225 },
      { p: 0.81439728, m: 0.028, v: 0.00032193775 },
    ];
    [0.5, -0.25, 0.1].forEach((g, i) => {
      opt.step({ p: Float32Array.of(g) }, 0.1);
      const state = opt.exportState();
      assertClose(p, [expected[i]!.p], 3e-7, `p after step ${i + 1}`);
      assertClose(state.m.p!, [expected[i]!.m], 1e-7, `m after step ${i + 1}`);
      assertClose(state.v.p!, [expected[i]!.v], 1e-7, `v after step ${i + 1}`);
      assert.equal(state.step, i + 1);
    });
  });

  it('adds eps outside the square root of the bias-corrected second moment', () => {
    // t=1, g = 1e-3, eps = 1e-3, lr = 1, no decay: update = g/(|g| + eps) = 0.5.
    // (Inside the root it would be 1e-3/√(1e-6 + 1e-3) ≈ 0.0316; without bias correction of v,
    // 1e-3/(√1e-9 + 1e-3) ≈ 0.969.)
    const p = Float32Array.of(0);
    new AdamW({ p }, { eps: 1e-3, weightDecay: 0 }).step({ p: Float32Array.of(1e-3) }, 1);
    assertClose(p, [-0.5], 1e-6, 'p');
  });

  it('decays weights decoupled from the gradient: a zero gradient only shrinks p by lr·λ', () => {
    // Coupled L2 (Adam with weight_decay) would feed λ·p into m and move p by about lr instead.
    const p = Float32Array.of(2);
    const opt = new AdamW({ p }, { weightDecay: 0.5 });
    opt.step({ p: Float32Array.of(0) }, 0.1);
    assertClose(p, [2 * (1 - 0.05)], 1e-7, 'p');
    assert.deepEqual(opt.exportState().m.p, Float32Array.of(0));
  });

  it('tracks a float64 reference over many steps with decay on some parameters', () => {
    const h = { beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.05 };
    const rand = lcg(7);
    const shapes: Record<string, number> = { 'layer.weight': 37, 'layer.bias': 5, 'norm.gain': 3 };
    const noDecay = (name: string) => !name.endsWith('.weight');
    const params: Record<string, Float32Array> = {};
    const ref: Record<string, RefParam> = {};
    for (const [name, n] of Object.entries(shapes)) {
      params[name] = Float32Array.from({ length: n }, () => rand() * 4);
      ref[name] = { p: Array.from(params[name]!), m: new Array(n).fill(0), v: new Array(n).fill(0), decay: !noDecay(name) };
    }
    const opt = new AdamW(new Map(Object.entries(params)), { ...h, noWeightDecay: noDecay });
    assert.equal(opt.decays('layer.weight'), true);
    assert.equal(opt.decays('layer.bias'), false);
    for (let t = 1; t <= 25; t++) {
      const lr = 0.01 * (1 + Math.sin(t)); // varying lr, as under a schedule
      const grads: Record<string, Float32Array> = {};
      for (const [name, n] of Object.entries(shapes)) grads[name] = Float32Array.from({ length: n }, () => rand() * 10 ** ((t % 5) - 2));
      opt.step(grads, lr);
      referenceStep(ref, Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, Array.from(g)])), t, lr, h);
    }
    // float32 storage vs float64 reference: differences stay at float32 rounding level.
    for (const name of Object.keys(shapes)) assertClose(params[name]!, ref[name]!.p, 2e-6, name);
  });

  it('exports copies, not live views', () => {
    const opt = new AdamW({ w: new Float32Array(2) });
    const before = opt.exportState();
    opt.step({ w: Float32Array.from([1, 1]) }, 0.1);
    assert.deepEqual(before.m.w, new Float32Array(2));
  });

  it('validates gradients before touching any parameter', () => {
    const a = Float32Array.from([1, 2]);
    const b = Float32Array.from([3]);
    const opt = new AdamW({ a, b });
    assert.throws(() => opt.step({ a: new Float32Array(2) }, 0.1), /missing gradient for parameter "b"/);
    assert.throws(() => opt.step({ a: new Float32Array(2), b: new Float32Array(2) }, 0.1), /"b" has 2 elements, parameter has 1/);
    assert.throws(() => opt.step({ a: new Float32Array(2), b: new Float32Array(1), c: new Float32Array(1) }, 0.1), /unknown parameters: c/);
    assert.throws(() => opt.step({ a: new Float32Array(2), b: new Float32Array(1) }, NaN), /learning rate/);
    assert.deepEqual([a, b, opt.stepCount], [Float32Array.from([1, 2]), Float32Array.from([3]), 0]);
  });

  it('rejects bad hyperparameters, unknown no-decay names and mismatched state', () => {
    assert.throws(() => new AdamW({}, { beta1: 1 }), /beta1/);
    assert.throws(() => new AdamW({}, { eps: -1 }), /eps/);
    assert.throws(() => new AdamW({ w: new Float32Array(1) }, { noWeightDecay: ['bias'] }), /unknown parameter "bias"/);
    const opt = new AdamW({ w: new Float32Array(2) });
    assert.throws(() => opt.importState({ step: 1, m: { w: new Float32Array(3) }, v: { w: new Float32Array(2) } }), /m\["w"\]/);
    assert.throws(() => opt.importState({ step: 1, m: {}, v: { w: new Float32Array(2) } }), /m has parameters \[\]/);
    assert.throws(() => opt.importState({ step: -1, m: { w: new Float32Array(2) }, v: { w: new Float32Array(2) } }), /step/);
  });
});
