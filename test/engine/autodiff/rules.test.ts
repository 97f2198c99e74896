// Every gradient rule checked against central finite differences in float64 on ONNX Runtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, type Value } from '../../../src/engine/graph/builder.ts';
import type { Attr } from '../../../src/engine/graph/types.ts';
import { serializeGraph } from '../../../src/engine/graph/serialize.ts';
import { openSession, ort } from '../../../src/engine/ort/session.ts';
import * as o from '../../../src/engine/graph/ops.ts';
import { gradCheck, seededUniform, type CheckFeed } from '../../../src/engine/autodiff/grad-check.ts';
import { RULES } from '../../../src/engine/autodiff/rules.ts';
import { erfFloat64, lowerErfForFloat64 } from '../../../src/engine/autodiff/erf-float64.ts';

const TOL = 1e-6;

function fl(dims: number[], seed: number, offset = 0): CheckFeed {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = seededUniform(n, seed).map((v) => 2 * v + offset);
  return { dtype: 'float64', data, dims };
}
function int64(values: number[], dims: number[]): CheckFeed {
  return { dtype: 'int64', data: BigInt64Array.from(values.map(BigInt)), dims };
}

interface Case {
  ops: string[];
  feeds: Record<string, CheckFeed>;
  build: (g: Graph) => { output: Value; wrt: Value[] };
  lower?: (g: Graph) => void;
}

/** One node of an op that ops.ts may have no constructor for. */
function node(g: Graph, op: string, inputs: Value[], shape: readonly (number | string)[], attrs: Record<string, Attr> = {}): Value {
  return g.node(op, inputs, [{ dtype: inputs[0].dtype, shape }], attrs)[0];
}

// ORT's CPU provider has no float64 Erf kernel: the Erf case is checked with each Erf node replaced,
// after the backward pass (so the Erf rule produced the gradient), by an exact float64 composition of
// erf (erf-float64.ts: Maclaurin series below |x| = 2, erfc continued fraction above), itself checked
// against reference values at the end of this file.

// Inputs use named dims where the model does (batch, sequence), static ones elsewhere.
const x = (g: Graph, shape: (number | string)[] = ['B', 3, 4]) => g.input('x', 'float64', shape);
const X = { x: fl([2, 3, 4], 1) };

const cases: Record<string, Case> = {
  identity: {
    ops: ['Identity'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.identity(a), wrt: [a] };
    },
  },
  reshape: {
    ops: ['Reshape'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.reshape(a, [0, 12]), wrt: [a] };
    },
  },
  squeeze: {
    ops: ['Squeeze', 'Unsqueeze'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.squeeze(o.mul(o.unsqueeze(a, [1]), 2), [1]), wrt: [a] };
    },
  },
  addBroadcast: {
    ops: ['Add'],
    feeds: { ...X, b: fl([4], 2), c: fl([3, 1], 3) },
    build: (g) => {
      const a = x(g);
      const b = g.input('b', 'float64', [4]);
      const c = g.input('c', 'float64', [3, 1]);
      return { output: o.add(o.add(a, b), c), wrt: [a, b, c] };
    },
  },
  subBroadcast: {
    ops: ['Sub'],
    feeds: { ...X, b: fl([1, 3, 1], 2) },
    build: (g) => {
      const a = x(g);
      const b = g.input('b', 'float64', [1, 3, 1]);
      return { output: o.sub(a, b), wrt: [a, b] };
    },
  },
  mulBroadcast: {
    ops: ['Mul'],
    feeds: { ...X, b: fl([4], 2) },
    build: (g) => {
      const a = x(g);
      const b = g.input('b', 'float64', [4]);
      return { output: o.mul(o.mul(a, b), a), wrt: [a, b] };
    },
  },
  div: {
    ops: ['Div'],
    feeds: { ...X, b: fl([3, 1], 2, 3) },
    build: (g) => {
      const a = x(g);
      const b = g.input('b', 'float64', [3, 1]);
      return { output: o.div(a, b), wrt: [a, b] };
    },
  },
  pow: {
    ops: ['Pow'],
    feeds: { x: fl([2, 3, 4], 1, 3) },
    build: (g) => {
      const a = x(g);
      return { output: o.pow(a, 3), wrt: [a] };
    },
  },
  neg: {
    ops: ['Neg'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.neg(a), wrt: [a] };
    },
  },
  exp: {
    ops: ['Exp'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.exp(a), wrt: [a] };
    },
  },
  log: {
    ops: ['Log'],
    feeds: { x: fl([2, 3, 4], 1, 2) },
    build: (g) => {
      const a = x(g);
      return { output: o.log(a), wrt: [a] };
    },
  },
  sqrt: {
    ops: ['Sqrt'],
    feeds: { x: fl([2, 3, 4], 1, 2) },
    build: (g) => {
      const a = x(g);
      return { output: o.sqrt(a), wrt: [a] };
    },
  },
  tanh: {
    ops: ['Tanh'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.tanh(a), wrt: [a] };
    },
  },
  sigmoid: {
    ops: ['Sigmoid'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.sigmoid(a), wrt: [a] };
    },
  },
  cast: {
    ops: ['Cast'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.cast(a, 'float64'), wrt: [a] };
    },
  },
  where: {
    ops: ['Where'],
    feeds: { ...X, b: fl([4], 2) },
    build: (g) => {
      const a = x(g);
      const b = g.input('b', 'float64', [4]);
      return { output: o.where(o.less(a, 0), a, o.mul(b, 3)), wrt: [a, b] };
    },
  },
  matmulWeight: {
    ops: ['MatMul'],
    feeds: { ...X, w: fl([4, 5], 2) },
    build: (g) => {
      const a = x(g);
      const w = g.input('w', 'float64', [4, 5]);
      return { output: o.matmul(a, w), wrt: [a, w] };
    },
  },
  matmulBatched: {
    ops: ['MatMul'],
    feeds: { x: fl([2, 2, 3, 4], 1), y: fl([2, 2, 4, 3], 2) },
    build: (g) => {
      const a = g.input('x', 'float64', ['B', 2, 'T', 4]);
      const b = g.input('y', 'float64', ['B', 2, 4, 'T']);
      return { output: o.matmul(a, b), wrt: [a, b] };
    },
  },
  matmulBroadcastBatch: {
    ops: ['MatMul'],
    feeds: { x: fl([2, 3, 4], 1), y: fl([1, 4, 2], 2) },
    build: (g) => {
      const a = x(g);
      const b = g.input('y', 'float64', [1, 4, 2]);
      return { output: o.matmul(a, b), wrt: [a, b] };
    },
  },
  reduceSum: {
    ops: ['ReduceSum'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.reduceSum(a, [1], false), wrt: [a] };
    },
  },
  reduceMean: {
    ops: ['ReduceMean'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.add(o.reduceMean(a, [-1], true), o.reduceMean(a, [0, 1], false)), wrt: [a] };
    },
  },
  softmax: {
    ops: ['Softmax'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.softmax(a, -1), wrt: [a] };
    },
  },
  logSoftmax: {
    ops: ['LogSoftmax'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.logSoftmax(a, 1), wrt: [a] };
    },
  },
  gatherRepeated: {
    ops: ['Gather'],
    feeds: { w: fl([5, 3], 1), id: int64([1, 4, 1, 0, 1, 2], [2, 3]) },
    build: (g) => {
      const w = g.input('w', 'float64', [5, 3]);
      const id = g.input('id', 'int64', ['B', 'T']);
      return { output: o.gather(w, id), wrt: [w] };
    },
  },
  gatherElements: {
    ops: ['GatherElements'],
    feeds: { ...X, id: int64([0, 3, 3, 1, 2, 2], [2, 3, 1]) },
    build: (g) => {
      const a = x(g);
      const id = g.input('id', 'int64', ['B', 3, 1]);
      return { output: o.gatherElements(a, id, 2), wrt: [a] };
    },
  },
  transpose: {
    ops: ['Transpose'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: o.transpose(a, [2, 0, 1]), wrt: [a] };
    },
  },
  expand: {
    ops: ['Expand'],
    feeds: { ...X, b: fl([3, 1], 2) },
    build: (g) => {
      const a = x(g);
      const b = g.input('b', 'float64', [3, 1]);
      return { output: o.mul(o.expand(b, o.shapeOf(a), a.shape), a), wrt: [a, b] };
    },
  },
  concatSplit: {
    ops: ['Concat', 'Split'],
    feeds: { ...X, b: fl([2, 2, 4], 2) },
    build: (g) => {
      const a = x(g);
      const b = g.input('b', 'float64', ['B', 2, 4]);
      const c = o.concat([a, o.mul(b, b)], 1);
      const [p, q] = o.split(c, g.constInts([2, 3]), 1, [
        ['B', 2, 4],
        ['B', 3, 4],
      ]);
      return { output: o.add(o.concat([q, p], 1), c), wrt: [a, b] };
    },
  },
  gatherAxis1: {
    ops: ['Gather'],
    feeds: { x: fl([2, 5, 3], 1), id: int64([4, 0, 4], [3]) },
    build: (g) => {
      const a = g.input('x', 'float64', ['B', 5, 3]);
      const id = g.input('id', 'int64', ['K']);
      return { output: o.gather(a, id, 1), wrt: [a] };
    },
  },
  erfGelu: {
    // Exact GELU as the Qwen2-VL merger writes it: 0.5·x·(1 + erf(x/√2)).
    // Inputs in [−4, 4], so erf's argument falls on both sides of the composition's switch at 2.
    ops: ['Erf'],
    feeds: { x: { ...X.x, data: (X.x.data as Float64Array).map((v) => 4 * v) } },
    lower: lowerErfForFloat64,
    build: (g) => {
      const a = x(g);
      return { output: o.mul(o.mul(a, 0.5), o.add(o.erf(o.mul(a, Math.SQRT1_2)), 1)), wrt: [a] };
    },
  },
  sinCos: {
    ops: ['Sin', 'Cos'],
    feeds: { ...X, b: fl([4], 2) },
    build: (g) => {
      const a = x(g);
      const b = g.input('b', 'float64', [4]);
      return { output: o.add(o.mul(node(g, 'Sin', [a], a.shape), 2), node(g, 'Cos', [o.mul(a, b)], a.shape)), wrt: [a, b] };
    },
  },
  reciprocal: {
    ops: ['Reciprocal'],
    feeds: { x: fl([2, 3, 4], 1, 3) },
    build: (g) => {
      const a = x(g);
      return { output: node(g, 'Reciprocal', [a], a.shape), wrt: [a] };
    },
  },
  cumSum: {
    ops: ['CumSum'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      const axis = g.constInts([1], true);
      const inclusive = node(g, 'CumSum', [a, axis], a.shape);
      const exclusiveReverse = node(g, 'CumSum', [o.mul(a, a), axis], a.shape, { exclusive: { kind: 'int', v: 1 }, reverse: { kind: 'int', v: 1 } });
      return { output: o.add(inclusive, exclusiveReverse), wrt: [a] };
    },
  },
  tile: {
    ops: ['Tile'],
    feeds: X,
    build: (g) => {
      const a = x(g);
      return { output: node(g, 'Tile', [a, g.constInts([1, 2, 3])], ['B', 6, 12]), wrt: [a] };
    },
  },
  gatherNDScatterND: {
    ops: ['GatherND', 'ScatterND'],
    feeds: { x: fl([4, 3], 1), u: fl([2, 3], 2), id: int64([3, 1], [2, 1]) },
    build: (g) => {
      // The image-embedding merge pattern: rows of a text table replaced by vision rows, then read back.
      const a = g.input('x', 'float64', [4, 3]);
      const u = g.input('u', 'float64', ['K', 3]);
      const id = g.input('id', 'int64', ['K', 1]);
      const merged = node(g, 'ScatterND', [a, id, u], [4, 3]);
      const added = node(g, 'ScatterND', [o.mul(a, a), id, u], [4, 3], { reduction: { kind: 'string', v: 'add' } });
      const picked = node(g, 'GatherND', [o.mul(merged, added), g.initializer('rows', 'int64', [3, 1], BigInt64Array.from([0n, 3n, 3n]), [0, 3, 3])], [3, 3]);
      return { output: o.add(o.reduceSum(picked, [0], false), o.reduceSum(merged, [0], false)), wrt: [a, u] };
    },
  },
  gemm: {
    ops: ['Gemm'],
    feeds: { a: fl([3, 4], 1), b: fl([5, 4], 2), c: fl([5], 3), p: fl([4, 3], 4), q: fl([4, 5], 5) },
    build: (g) => {
      const a = g.input('a', 'float64', ['M', 4]);
      const b = g.input('b', 'float64', [5, 4]);
      const c = g.input('c', 'float64', [5]);
      const p = g.input('p', 'float64', [4, 'M']);
      const q = g.input('q', 'float64', [4, 5]);
      const attrs = (tA: number, tB: number): Record<string, Attr> => ({
        alpha: { kind: 'float', v: 1.5 },
        beta: { kind: 'float', v: -0.5 },
        transA: { kind: 'int', v: tA },
        transB: { kind: 'int', v: tB },
      });
      const y1 = node(g, 'Gemm', [a, b, c], ['M', 5], attrs(0, 1)); // x·Wᵀ + b, a linear layer on HF weights
      const y2 = node(g, 'Gemm', [p, q], ['M', 5], attrs(1, 0));
      return { output: o.mul(y1, y2), wrt: [a, b, c, p, q] };
    },
  },
  slice: {
    ops: ['Slice'],
    feeds: { x: fl([2, 5, 4], 1) },
    build: (g) => {
      const a = g.input('x', 'float64', ['B', 'T', 4]);
      return { output: o.slice(a, [1, 1], [Infinity, 3], [1, 2]), wrt: [a] };
    },
  },
};

test('every gradient rule has a finite-difference case', () => {
  const covered = new Set(Object.values(cases).flatMap((c) => c.ops));
  assert.deepEqual(
    [...Object.keys(RULES)].filter((op) => !covered.has(op)),
    [],
  );
});

for (const [name, c] of Object.entries(cases)) {
  test(`gradient of ${name} (${c.ops.join(', ')}) matches central differences in float64`, async () => {
    const r = await gradCheck(c.build, c.feeds, { lower: c.lower });
    assert.ok(r.checked > 0);
    assert.ok(r.maxRelError <= TOL, `max relative error ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
  });
}

test('the float64 erf composition used for the Erf check is erf to float64 rounding, on both branches', async () => {
  // erf to 16 digits (mpmath), including values past the switch at |x| = 2 and where 1 − erf is tiny.
  const ref: [number, number][] = [
    [0.1, 0.1124629160182849],
    [0.5, 0.5204998778130465],
    [-0.3, -0.3286267594591274],
    [1, 0.8427007929497149],
    [1.9, 0.9927904292352575],
    [2, 0.9953222650189527],
    [-2.5, -0.999593047982555],
    [3, 0.9999779095030014],
    [4, 0.9999999845827421],
    [-5, -0.9999999999984626],
    [30, 1],
  ];
  const g = new Graph('erf_float64', 'float64');
  const xin = g.input('x', 'float64', [ref.length]);
  g.output(erfFloat64(xin), 'y');
  const { session } = await openSession(serializeGraph(g), { optimization: 'disabled' });
  const out = await session.run({ x: new ort.Tensor('float64', Float64Array.from(ref.map((r) => r[0])), [ref.length]) });
  await session.release();
  const y = out.y.data as Float64Array;
  ref.forEach(([xv, want], i) => assert.ok(Math.abs(y[i] - want) <= 4e-16, `erf(${xv}) = ${y[i]}, want ${want}`));
});
