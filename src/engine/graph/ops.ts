// Op constructors with their shape rules. Each returns the output Value(s) of one ONNX node
// (opset 17). Shapes are inferred here so that every later step — autodiff in particular —
// knows ranks, static sizes and broadcast axes without running anything.
import { type Graph, Value, staticSize } from './builder.ts';
import type { DType, Dim, Shape } from './types.ts';
import { float, int, ints, isFloat, str } from './types.ts';

export const OPSET = 17;

function graphOf(...vs: Value[]): Graph {
  const g = vs[0].graph;
  for (const v of vs) if (v.graph !== g) throw new Error('values from different graphs');
  return g;
}

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Numpy broadcasting over dims; only a static 1 broadcasts (a named dim is never assumed to be 1). */
export function broadcastShapes(a: Shape, b: Shape): Dim[] {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = i < rank - a.length ? 1 : a[i - (rank - a.length)];
    const db = i < rank - b.length ? 1 : b[i - (rank - b.length)];
    if (da === 1) out.push(db);
    else if (db === 1) out.push(da);
    else if (da === db) out.push(da);
    else if (typeof da === 'number' && typeof db === 'number') {
      throw new Error(`cannot broadcast [${a.join(',')}] with [${b.join(',')}]`);
    } else out.push(typeof da === 'number' ? da : db); // a named dim meeting a size: trust the size
  }
  return out;
}

// ---- elementwise ----------------------------------------------------------------------------

function binary(op: string, a: Value, b: Value): Value {
  const g = graphOf(a, b);
  if (a.dtype !== b.dtype) throw new Error(`${op}: dtype ${a.dtype} vs ${b.dtype}`);
  const outDtype: DType = ['Equal', 'Less', 'Greater', 'And', 'Or'].includes(op) ? 'bool' : a.dtype;
  return g.node(op, [a, b], [{ dtype: outDtype, shape: broadcastShapes(a.shape, b.shape) }])[0];
}

/** Lifts a JS number to a scalar constant of `like`'s dtype. */
function lift(x: Value | number, like: Value): Value {
  if (typeof x !== 'number') return x;
  return like.dtype === 'int64' ? like.graph.constInts([x], true) : like.graph.constFloat(x);
}

export const add = (a: Value, b: Value | number) => binary('Add', a, lift(b, a));
export const sub = (a: Value, b: Value | number) => binary('Sub', a, lift(b, a));
export const mul = (a: Value, b: Value | number) => binary('Mul', a, lift(b, a));
export const div = (a: Value, b: Value | number) => binary('Div', a, lift(b, a));
export const pow = (a: Value, b: Value | number) => binary('Pow', a, lift(b, a));
export const equal = (a: Value, b: Value | number) => binary('Equal', a, lift(b, a));
export const less = (a: Value, b: Value | number) => binary('Less', a, lift(b, a));

function unary(op: string, x: Value, attrs = {}): Value {
  return x.graph.node(op, [x], [{ dtype: x.dtype, shape: x.shape }], attrs)[0];
}

export const neg = (x: Value) => unary('Neg', x);
export const exp = (x: Value) => unary('Exp', x);
export const log = (x: Value) => unary('Log', x);
export const sqrt = (x: Value) => unary('Sqrt', x);
export const tanh = (x: Value) => unary('Tanh', x);
export const erf = (x: Value) => unary('Erf', x);
export const sigmoid = (x: Value) => unary('Sigmoid', x);
export const identity = (x: Value) => unary('Identity', x);

export function where(cond: Value, a: Value, b: Value): Value {
  const g = graphOf(cond, a, b);
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape), b.shape);
  return g.node('Where', [cond, a, b], [{ dtype: a.dtype, shape }])[0];
}

export function cast(x: Value, to: DType): Value {
  const codes: Record<DType, number> = { float32: 1, float64: 11, int64: 7, bool: 9 };
  return x.graph.node('Cast', [x], [{ dtype: to, shape: x.shape }], { to: int(codes[to]) })[0];
}

// ---- linear algebra -------------------------------------------------------------------------

export function matmul(a: Value, b: Value): Value {
  const g = graphOf(a, b);
  if (a.rank < 2 || b.rank < 2) throw new Error('matmul: rank >= 2 expected');
  const k1 = a.shape[a.rank - 1];
  const k2 = b.shape[b.rank - 2];
  if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
    throw new Error(`matmul: inner dims ${k1} vs ${k2}`);
  }
  const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const shape = [...batch, a.shape[a.rank - 2], b.shape[b.rank - 1]];
  return g.node('MatMul', [a, b], [{ dtype: a.dtype, shape }])[0];
}

/** Gemm on 2-D operands (used by autodiff for weight gradients: one big GEMM instead of a batch). */
export function gemm(a: Value, b: Value, opts: { transA?: boolean; transB?: boolean } = {}): Value {
  const g = graphOf(a, b);
  const m = opts.transA ? a.shape[1] : a.shape[0];
  const n = opts.transB ? b.shape[0] : b.shape[1];
  return g.node('Gemm', [a, b], [{ dtype: a.dtype, shape: [m, n] }], {
    transA: int(opts.transA ? 1 : 0),
    transB: int(opts.transB ? 1 : 0),
  })[0];
}

// ---- reductions and normalisers -------------------------------------------------------------

function reducedShape(shape: Shape, axes: number[], keepdims: boolean): Dim[] {
  const norm = axes.map((a) => normAxis(a, shape.length));
  const out: Dim[] = [];
  shape.forEach((d, i) => {
    if (norm.includes(i)) {
      if (keepdims) out.push(1);
    } else out.push(d);
  });
  return out;
}

/** ReduceMean (opset 17 takes axes as an attribute). */
export function reduceMean(x: Value, axes: number[], keepdims = true): Value {
  const norm = axes.map((a) => normAxis(a, x.rank));
  return x.graph.node('ReduceMean', [x], [{ dtype: x.dtype, shape: reducedShape(x.shape, norm, keepdims) }], {
    axes: ints(norm),
    keepdims: int(keepdims ? 1 : 0),
  })[0];
}

/** ReduceSum (opset 13+ takes axes as an input). */
export function reduceSum(x: Value, axes: number[], keepdims = true): Value {
  const norm = axes.map((a) => normAxis(a, x.rank));
  const g = x.graph;
  return g.node('ReduceSum', [x, g.constInts(norm)], [{ dtype: x.dtype, shape: reducedShape(x.shape, norm, keepdims) }], {
    keepdims: int(keepdims ? 1 : 0),
  })[0];
}

export function softmax(x: Value, axis = -1): Value {
  return unary('Softmax', x, { axis: int(normAxis(axis, x.rank)) });
}

export function logSoftmax(x: Value, axis = -1): Value {
  return unary('LogSoftmax', x, { axis: int(normAxis(axis, x.rank)) });
}

// ---- indexing -------------------------------------------------------------------------------

export function gather(data: Value, indices: Value, axis = 0): Value {
  const g = graphOf(data, indices);
  const a = normAxis(axis, data.rank);
  const shape = [...data.shape.slice(0, a), ...indices.shape, ...data.shape.slice(a + 1)];
  return g.node('Gather', [data, indices], [{ dtype: data.dtype, shape }], { axis: int(a) })[0];
}

export function gatherElements(data: Value, indices: Value, axis: number): Value {
  const g = graphOf(data, indices);
  return g.node('GatherElements', [data, indices], [{ dtype: data.dtype, shape: indices.shape }], {
    axis: int(normAxis(axis, data.rank)),
  })[0];
}

export function scatterElementsAdd(data: Value, indices: Value, updates: Value, axis: number): Value {
  const g = graphOf(data, indices, updates);
  return g.node('ScatterElements', [data, indices, updates], [{ dtype: data.dtype, shape: data.shape }], {
    axis: int(normAxis(axis, data.rank)),
    reduction: str('add'),
  })[0];
}

export function scatterNDAdd(data: Value, indices: Value, updates: Value): Value {
  const g = graphOf(data, indices, updates);
  return g.node('ScatterND', [data, indices, updates], [{ dtype: data.dtype, shape: data.shape }], {
    reduction: str('add'),
  })[0];
}

// ---- shape manipulation ---------------------------------------------------------------------

export function transpose(x: Value, perm: number[]): Value {
  if (perm.length !== x.rank) throw new Error(`transpose: perm ${perm} for rank ${x.rank}`);
  return x.graph.node('Transpose', [x], [{ dtype: x.dtype, shape: perm.map((p) => x.shape[p]) }], {
    perm: ints(perm),
  })[0];
}

/** Swaps the last two axes. */
export function transposeLast2(x: Value): Value {
  const perm = [...Array(x.rank).keys()];
  [perm[x.rank - 2], perm[x.rank - 1]] = [perm[x.rank - 1], perm[x.rank - 2]];
  return transpose(x, perm);
}

/**
 * Reshape to a static target: entries are sizes, 0 (copy the input's dim at that index) or -1
 * (inferred). A `Value` target (a runtime shape tensor) gives a dynamic reshape with `outShape`.
 */
export function reshape(x: Value, target: number[] | Value, outShape?: Shape): Value {
  const g = x.graph;
  if (target instanceof Value) {
    if (!outShape) throw new Error('reshape: dynamic target needs outShape');
    return g.node('Reshape', [x, target], [{ dtype: x.dtype, shape: outShape }])[0];
  }
  const shape: Dim[] = target.map((t, i) => (t === 0 ? x.shape[i] : t));
  const inf = target.indexOf(-1);
  if (inf >= 0) {
    const total = staticSize(x.shape);
    const known = shape.filter((_, i) => i !== inf);
    const knownSize = staticSize(known);
    if (total !== undefined && knownSize !== undefined) shape[inf] = total / knownSize;
    else shape[inf] = `${x.name}_r${inf}`;
  }
  return g.node('Reshape', [x, g.constInts(target)], [{ dtype: x.dtype, shape }])[0];
}

export function concat(xs: Value[], axis: number): Value {
  const g = graphOf(...xs);
  const a = normAxis(axis, xs[0].rank);
  const dims = xs.map((x) => x.shape[a]);
  const sum: Dim = dims.every((d) => typeof d === 'number') ? (dims as number[]).reduce((p, q) => p + q, 0) : dims.join('+');
  const shape = xs[0].shape.map((d, i) => (i === a ? sum : d));
  return g.node('Concat', xs, [{ dtype: xs[0].dtype, shape }], { axis: int(a) })[0];
}

/** Slice with static starts/ends along `axes` (step 1). `end` may be Infinity. */
export function slice(x: Value, starts: number[], ends: number[], axes: number[]): Value {
  const g = x.graph;
  const norm = axes.map((a) => normAxis(a, x.rank));
  const big = 2 ** 62;
  const shape: Dim[] = [...x.shape];
  norm.forEach((a, i) => {
    const d = x.shape[a];
    const s = starts[i];
    const e = ends[i];
    if (s < 0 || (e < 0 && e !== -Infinity)) throw new Error('slice: negative bounds are not supported');
    if (typeof d === 'number') shape[a] = Math.max(0, Math.min(e, d) - Math.min(s, d));
    else if (e === Infinity) shape[a] = s === 0 ? d : `${d}-${s}`;
    else shape[a] = e - s; // a finite window of a named dim: the caller promises it fits
  });
  const endVals = ends.map((e) => (e === Infinity ? big : e));
  return g.node('Slice', [x, g.constInts(starts), g.constInts(endVals), g.constInts(norm)], [{ dtype: x.dtype, shape }])[0];
}

export function expand(x: Value, shapeTensor: Value, outShape: Shape): Value {
  return x.graph.node('Expand', [x, shapeTensor], [{ dtype: x.dtype, shape: outShape }])[0];
}

export function unsqueeze(x: Value, axes: number[]): Value {
  const g = x.graph;
  const rank = x.rank + axes.length;
  const norm = axes.map((a) => normAxis(a, rank)).sort((p, q) => p - q);
  const shape: Dim[] = [];
  let j = 0;
  for (let i = 0; i < rank; i++) shape.push(norm.includes(i) ? 1 : x.shape[j++]);
  return g.node('Unsqueeze', [x, g.constInts(norm)], [{ dtype: x.dtype, shape }])[0];
}

export function squeeze(x: Value, axes: number[]): Value {
  const g = x.graph;
  const norm = axes.map((a) => normAxis(a, x.rank));
  const shape = x.shape.filter((_, i) => !norm.includes(i));
  return g.node('Squeeze', [x, g.constInts(norm)], [{ dtype: x.dtype, shape }])[0];
}

export function pad(x: Value, pads: Value, outShape: Shape): Value {
  return x.graph.node('Pad', [x, pads], [{ dtype: x.dtype, shape: outShape }])[0];
}

/** Splits along `axis` into pieces whose sizes come from a runtime int64 tensor. */
export function split(x: Value, sizes: Value, axis: number, outShapes: Shape[]): Value[] {
  return x.graph.node(
    'Split',
    [x, sizes],
    outShapes.map((shape) => ({ dtype: x.dtype, shape })),
    { axis: int(normAxis(axis, x.rank)) },
  );
}

// ---- shape queries (never differentiated) -----------------------------------------------------

export function shapeOf(x: Value): Value {
  return x.graph.node('Shape', [x], [{ dtype: 'int64', shape: [x.rank] }])[0];
}

/** The size of axis `axis` of `x` as a 1-element int64 tensor. */
export function dimOf(x: Value, axis: number): Value {
  const a = normAxis(axis, x.rank);
  return x.graph.node('Shape', [x], [{ dtype: 'int64', shape: [1] }], { start: int(a), end: int(a + 1) })[0];
}

export function sizeOf(x: Value): Value {
  return x.graph.node('Size', [x], [{ dtype: 'int64', shape: [] }])[0];
}

/** A tensor of zeros with the runtime shape of `like`. */
export function zerosLike(like: Value): Value {
  if (!isFloat(like.dtype)) throw new Error('zerosLike: float values only');
  return like.graph.node('ConstantOfShape', [shapeOf(like)], [{ dtype: like.dtype, shape: like.shape }], {
    value: { kind: 'tensor', dtype: like.dtype, v: [0] },
  })[0];
}
export { float };

// ---- integer index arithmetic and trigonometry (positions built inside serving graphs) -------

export const sin = (x: Value) => unary('Sin', x);
export const cos = (x: Value) => unary('Cos', x);
export const not = (x: Value) => unary('Not', x);
export const greater = (a: Value, b: Value | number) => binary('Greater', a, lift(b, a));
export const and = (a: Value, b: Value) => binary('And', a, b);

export function lessOrEqual(a: Value, b: Value | number): Value {
  const bb = lift(b, a);
  const g = graphOf(a, bb);
  return g.node('LessOrEqual', [a, bb], [{ dtype: 'bool', shape: broadcastShapes(a.shape, bb.shape) }])[0];
}

/** Integer remainder with the sign of the divisor (ONNX Mod, fmod = 0); int64 only. */
export function mod(a: Value, b: Value | number): Value {
  const bb = lift(b, a);
  if (a.dtype !== 'int64' || bb.dtype !== 'int64') throw new Error('mod: int64 operands expected');
  return graphOf(a, bb).node('Mod', [a, bb], [{ dtype: 'int64', shape: broadcastShapes(a.shape, bb.shape) }])[0];
}

/** [start, limit) in steps of `delta`; scalar operands of one dtype, `length` names the result's dim. */
export function range(start: Value, limit: Value, delta: Value, length: Dim): Value {
  const g = graphOf(start, limit, delta);
  return g.node('Range', [start, limit, delta], [{ dtype: start.dtype, shape: [length] }])[0];
}

/** Inclusive cumulative sum along `axis`. */
export function cumSum(x: Value, axis: number): Value {
  const g = x.graph;
  return g.node('CumSum', [x, g.constInts([normAxis(axis, x.rank)], true)], [{ dtype: x.dtype, shape: x.shape }])[0];
}
