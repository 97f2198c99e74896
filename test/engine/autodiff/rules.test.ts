// Every gradient rule checked against central finite differences in float64 on ONNX Runtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Graph, Value } from '../../../src/engine/graph/builder.ts';
import * as o from '../../../src/engine/graph/ops.ts';
import { gradCheck, seededUniform, type CheckFeed } from '../../../src/engine/autodiff/grad-check.ts';
import { RULES } from '../../../src/engine/autodiff/rules.ts';

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
}

// Inputs use named dims where the model does (batch, sequence), static ones elsewhere.
const x = (g: Graph, shape: (number | string)[] = ['B', 3, 4]) => g.input('x', 'float64', shape);
const X = { x: fl([2, 3, 4], 1) };

const cases: Record<string, Case> = {
  identity: { ops: ['Identity'], feeds: X, build: (g) => { const a = x(g); return { output: o.identity(a), wrt: [a] }; } },
  reshape: { ops: ['Reshape'], feeds: X, build: (g) => { const a = x(g); return { output: o.reshape(a, [0, 12]), wrt: [a] }; } },
  squeeze: {
    ops: ['Squeeze', 'Unsqueeze'], feeds: X,
    build: (g) => { const a = x(g); return { output: o.squeeze(o.mul(o.unsqueeze(a, [1]), 2), [1]), wrt: [a] }; },
  },
  addBroadcast: {
    ops: ['Add'], feeds: { ...X, b: fl([4], 2), c: fl([3, 1], 3) },
    build: (g) => {
      const a = x(g); const b = g.input('b', 'float64', [4]); const c = g.input('c', 'float64', [3, 1]);
      return { output: o.add(o.add(a, b), c), wrt: [a, b, c] };
    },
  },
  subBroadcast: {
    ops: ['Sub'], feeds: { ...X, b: fl([1, 3, 1], 2) },
    build: (g) => { const a = x(g); const b = g.input('b', 'float64', [1, 3, 1]); return { output: o.sub(a, b), wrt: [a, b] }; },
  },
  mulBroadcast: {
    ops: ['Mul'], feeds: { ...X, b: fl([4], 2) },
    build: (g) => { const a = x(g); const b = g.input('b', 'float64', [4]); return { output: o.mul(o.mul(a, b), a), wrt: [a, b] }; },
  },
  div: {
    ops: ['Div'], feeds: { ...X, b: fl([3, 1], 2, 3) },
    build: (g) => { const a = x(g); const b = g.input('b', 'float64', [3, 1]); return { output: o.div(a, b), wrt: [a, b] }; },
  },
  pow: { ops: ['Pow'], feeds: { x: fl([2, 3, 4], 1, 3) }, build: (g) => { const a = x(g); return { output: o.pow(a, 3), wrt: [a] }; } },
  neg: { ops: ['Neg'], feeds: X, build: (g) => { const a = x(g); return { output: o.neg(a), wrt: [a] }; } },
  exp: { ops: ['Exp'], feeds: X, build: (g) => { const a = x(g); return { output: o.exp(a), wrt: [a] }; } },
  log: { ops: ['Log'], feeds: { x: fl([2, 3, 4], 1, 2) }, build: (g) => { const a = x(g); return { output: o.log(a), wrt: [a] }; } },
  sqrt: { ops: ['Sqrt'], feeds: { x: fl([2, 3, 4], 1, 2) }, build: (g) => { const a = x(g); return { output: o.sqrt(a), wrt: [a] }; } },
  tanh: { ops: ['Tanh'], feeds: X, build: (g) => { const a = x(g); return { output: o.tanh(a), wrt: [a] }; } },
  sigmoid: { ops: ['Sigmoid'], feeds: X, build: (g) => { const a = x(g); return { output: o.sigmoid(a), wrt: [a] }; } },
  cast: { ops: ['Cast'], feeds: X, build: (g) => { const a = x(g); return { output: o.cast(a, 'float64'), wrt: [a] }; } },
  where: {
    ops: ['Where'], feeds: { ...X, b: fl([4], 2) },
    build: (g) => {
      const a = x(g); const b = g.input('b', 'float64', [4]);
      return { output: o.where(o.less(a, 0), a, o.mul(b, 3)), wrt: [a, b] };
    },
  },
  matmulWeight: {
    ops: ['MatMul'], feeds: { ...X, w: fl([4, 5], 2) },
    build: (g) => { const a = x(g); const w = g.input('w', 'float64', [4, 5]); return { output: o.matmul(a, w), wrt: [a, w] }; },
  },
  matmulBatched: {
    ops: ['MatMul'], feeds: { x: fl([2, 2, 3, 4], 1), y: fl([2, 2, 4, 3], 2) },
    build: (g) => {
      const a = g.input('x', 'float64', ['B', 2, 'T', 4]); const b = g.input('y', 'float64', ['B', 2, 4, 'T']);
      return { output: o.matmul(a, b), wrt: [a, b] };
    },
  },
  matmulBroadcastBatch: {
    ops: ['MatMul'], feeds: { x: fl([2, 3, 4], 1), y: fl([1, 4, 2], 2) },
    build: (g) => {
      const a = x(g); const b = g.input('y', 'float64', [1, 4, 2]);
      return { output: o.matmul(a, b), wrt: [a, b] };
    },
  },
  reduceSum: { ops: ['ReduceSum'], feeds: X, build: (g) => { const a = x(g); return { output: o.reduceSum(a, [1], false), wrt: [a] }; } },
  reduceMean: {
    ops: ['ReduceMean'], feeds: X,
    build: (g) => { const a = x(g); return { output: o.add(o.reduceMean(a, [-1], true), o.reduceMean(a, [0, 1], false)), wrt: [a] }; },
  },
  softmax: { ops: ['Softmax'], feeds: X, build: (g) => { const a = x(g); return { output: o.softmax(a, -1), wrt: [a] }; } },
  logSoftmax: { ops: ['LogSoftmax'], feeds: X, build: (g) => { const a = x(g); return { output: o.logSoftmax(a, 1), wrt: [a] }; } },
  gatherRepeated: {
    ops: ['Gather'], feeds: { w: fl([5, 3], 1), id: int64([1, 4, 1, 0, 1, 2], [2, 3]) },
    build: (g) => {
      const w = g.input('w', 'float64', [5, 3]); const id = g.input('id', 'int64', ['B', 'T']);
      return { output: o.gather(w, id), wrt: [w] };
    },
  },
  gatherElements: {
    ops: ['GatherElements'], feeds: { ...X, id: int64([0, 3, 3, 1, 2, 2], [2, 3, 1]) },
    build: (g) => {
      const a = x(g); const id = g.input('id', 'int64', ['B', 3, 1]);
      return { output: o.gatherElements(a, id, 2), wrt: [a] };
    },
  },
  transpose: { ops: ['Transpose'], feeds: X, build: (g) => { const a = x(g); return { output: o.transpose(a, [2, 0, 1]), wrt: [a] }; } },
  expand: {
    ops: ['Expand'], feeds: { ...X, b: fl([3, 1], 2) },
    build: (g) => {
      const a = x(g); const b = g.input('b', 'float64', [3, 1]);
      return { output: o.mul(o.expand(b, o.shapeOf(a), a.shape), a), wrt: [a, b] };
    },
  },
  concatSplit: {
    ops: ['Concat', 'Split'], feeds: { ...X, b: fl([2, 2, 4], 2) },
    build: (g) => {
      const a = x(g); const b = g.input('b', 'float64', ['B', 2, 4]);
      const c = o.concat([a, o.mul(b, b)], 1);
      const [p, q] = o.split(c, g.constInts([2, 3]), 1, [['B', 2, 4], ['B', 3, 4]]);
      return { output: o.add(o.concat([q, p], 1), c), wrt: [a, b] };
    },
  },
  slice: {
    ops: ['Slice'], feeds: { x: fl([2, 5, 4], 1) },
    build: (g) => {
      const a = g.input('x', 'float64', ['B', 'T', 4]);
      return { output: o.slice(a, [1, 1], [Infinity, 3], [1, 2]), wrt: [a] };
    },
  },
};

test('every gradient rule has a finite-difference case', () => {
  const covered = new Set(Object.values(cases).flatMap((c) => c.ops));
  assert.deepEqual([...Object.keys(RULES)].filter((op) => !covered.has(op)), []);
});

for (const [name, c] of Object.entries(cases)) {
  test(`gradient of ${name} (${c.ops.join(', ')}) matches central differences in float64`, async () => {
    const r = await gradCheck(c.build, c.feeds);
    assert.ok(r.checked > 0);
    assert.ok(r.maxRelError <= TOL, `max relative error ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
  });
}
