// loraLinear computes PEFT's lora.Linear forward: x·Wᵀ + b + scale·((dropout(x)·Aᵀ)·Bᵀ).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph } from '../../../src/engine/graph/builder.ts';
import { serializeGraph } from '../../../src/engine/graph/serialize.ts';
import { openSession, f32 } from '../../../src/engine/ort/session.ts';
import { gradCheck, seededUniform } from '../../../src/engine/autodiff/grad-check.ts';
import { DROPOUT_SEED_INPUT, dropoutSalt, dropoutStepSeed, dropoutUniformReference, LoraSource, loraLinear } from '../../../src/engine/lora/graph.ts';
import { ort } from '../../../src/engine/ort/session.ts';
import { selectLoraTargets } from '../../../src/engine/lora/targets.ts';

const table = [
  { name: 'layer.proj.weight', shape: [2, 3] },
  { name: 'layer.proj.bias', shape: [2] },
];
const targets = selectLoraTargets(table, { target_modules: ['proj'], exclude_modules: null });

// x [1, 2, 3]; W [2, 3]; b [2]; r = 1, lora_alpha = 2 → scale 2.
const X = [1, 2, 3, 0, -1, 2];
const W = [1, 0, -1, 2, 1, 0];
const BIAS = [0.5, -1];
const A = [1, 1, 1];
const B = [0.5, -1];

async function run(withDropout: boolean, seed?: bigint): Promise<number[]> {
  const g = new Graph('lora_hand');
  const x = g.input('x', 'float32', ['B', 'T', 3]);
  const w = g.input('layer.proj.weight', 'float32', [2, 3]);
  const bias = g.input('layer.proj.bias', 'float32', [2]);
  const lora = new LoraSource(g, targets, { r: 1, lora_alpha: 2, use_rslora: false, lora_dropout: 0.5 }, { kind: 'inputs', dropout: withDropout });
  g.output(loraLinear(x, { weight: w, bias }, lora.adapter('layer.proj', x)), 'y');
  assert.deepEqual(lora.unused(), []);
  const { session } = await openSession(serializeGraph(g), { optimization: 'disabled' });
  const feed: Record<string, ReturnType<typeof f32>> = {
    x: f32(Float32Array.from(X), [1, 2, 3]),
    'layer.proj.weight': f32(Float32Array.from(W), [2, 3]),
    'layer.proj.bias': f32(Float32Array.from(BIAS), [2]),
    'layer.proj.lora_A.weight': f32(Float32Array.from(A), [1, 3]),
    'layer.proj.lora_B.weight': f32(Float32Array.from(B), [2, 1]),
  };
  if (seed !== undefined) feed[DROPOUT_SEED_INPUT] = new ort.Tensor('int64', BigInt64Array.of(seed), []);
  const out = await session.run(feed);
  await session.release();
  assert.deepEqual(out.y.dims, [1, 2, 2]);
  return [...(out.y.data as Float32Array)];
}

test('hand-built case: base + scale·B·A·x', async () => {
  // base x·Wᵀ + b = [[-1.5, 3], [-1.5, -2]]; x·Aᵀ = [6, 1]; ·Bᵀ = [[3, -6], [0.5, -1]]; ×2 added.
  assert.deepEqual(await run(false), [4.5, -9, -0.5, -4]);
});

test("hand-built case with dropout: the in-graph mask is the reference hash's, and only the adapter path sees it", async () => {
  // p = 0.5: an element is kept (×2) where its uniform is ≥ 0.5.
  for (const seed of [3n, 4n]) {
    const u = dropoutUniformReference(seed, dropoutSalt(0), 6);
    const mask = u.map((v) => (v < 0.5 ? 0 : 2));
    const xa = [0, 1].map((row) => [0, 1, 2].reduce((s, i) => s + X[3 * row + i] * mask[3 * row + i] * A[i], 0));
    const base = [
      [-1.5, 3],
      [-1.5, -2],
    ];
    const want = [0, 1].flatMap((row) => [0, 1].map((o) => base[row][o] + 2 * xa[row] * B[o]));
    const got = await run(true, seed);
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-6, `seed ${seed}: ${got} vs ${want} (mask ${mask})`));
  }
  assert.notDeepEqual(await run(true, 3n), await run(true, 4n));
});

test('the dropout hash: rate p, no correlation between neighbours, steps or layers', () => {
  const n = 40000;
  const a = dropoutUniformReference(dropoutStepSeed(7, 10), dropoutSalt(0), n);
  const b = dropoutUniformReference(dropoutStepSeed(7, 11), dropoutSalt(0), n);
  const c = dropoutUniformReference(dropoutStepSeed(7, 10), dropoutSalt(1), n);
  const rate = a.filter((v) => v < 0.1).length / n;
  assert.ok(Math.abs(rate - 0.1) < 0.006, `rate ${rate}`);
  const corr = (p: number[], q: number[], shift = 0) => (12 * p.slice(0, n - shift).reduce((s, v, i) => s + (v - 0.5) * (q[i + shift] - 0.5), 0)) / (n - shift);
  for (const [what, r] of [
    ['neighbours', corr(a, a, 1)],
    ['next step', corr(a, b)],
    ['next step shifted', corr(a, b, 1)],
    ['next layer', corr(a, c)],
  ] as const) {
    assert.ok(Math.abs(r) < 0.03, `${what}: correlation ${r}`);
  }
});

test('gradients of loraLinear (x, W, b, A, B, leading dims folded) match central differences in float64', async () => {
  const t = selectLoraTargets([{ name: 'p.weight', shape: [5, 4] }], { target_modules: ['p'], exclude_modules: null });
  const feed = (dims: number[], seed: number) => ({
    dtype: 'float64' as const,
    data: seededUniform(
      dims.reduce((a, b) => a * b, 1),
      seed,
    ).map((v) => 2 * v),
    dims,
  });
  const r = await gradCheck(
    (g) => {
      const x = g.input('x', 'float64', ['B', 'T', 4]);
      const w = g.input('p.weight', 'float64', [5, 4]);
      const b = g.input('p.bias', 'float64', [5]);
      const lora = new LoraSource(g, t, { r: 3, lora_alpha: 6, use_rslora: false, lora_dropout: 0.2 }, { kind: 'inputs', dropout: true });
      const ad = lora.adapter('p', x)!;
      return { output: loraLinear(x, { weight: w, bias: b }, ad), wrt: [x, w, b, ad.a, ad.b] };
    },
    {
      x: feed([2, 3, 4], 1),
      'p.weight': feed([5, 4], 2),
      'p.bias': feed([5], 3),
      'p.lora_A.weight': feed([3, 4], 4),
      'p.lora_B.weight': feed([5, 3], 5),
      [DROPOUT_SEED_INPUT]: { dtype: 'int64', data: BigInt64Array.of(5n), dims: [] },
    },
  );
  assert.ok(r.checked > 0);
  assert.ok(r.maxRelError <= 1e-6, `max relative error ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
});
