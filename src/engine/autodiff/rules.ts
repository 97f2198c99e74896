// One gradient rule per op. Each returns dL/d(input i) shaped like the broadcast result where
// broadcasting happens; `unbroadcast` (gradient-rule.ts) reduces it to the input's own shape.
import type { Value } from '../graph/builder.ts';
import * as o from '../graph/ops.ts';
import { unbroadcast, type GradRule, type RuleContext } from './gradient-rule.ts';

function single(ctx: RuleContext): { x: Value; y: Value; dy: Value } {
  const dy = ctx.dOut[0];
  if (!dy) throw new Error(`${ctx.node.op}: missing output gradient`);
  return { x: ctx.node.inputs[0]!, y: ctx.node.outputs[0], dy };
}

function input(ctx: RuleContext, i: number): Value {
  const v = ctx.node.inputs[i];
  if (!v) throw new Error(`${ctx.node.op}: input ${i} missing`);
  return v;
}

function intAttr(ctx: RuleContext, name: string): number {
  const a = ctx.node.attrs[name];
  if (a?.kind !== 'int') throw new Error(`${ctx.node.op}: int attribute ${name} missing`);
  return a.v;
}

function intsAttr(ctx: RuleContext, name: string): number[] {
  const a = ctx.node.attrs[name];
  if (a?.kind !== 'ints') throw new Error(`${ctx.node.op}: ints attribute ${name} missing`);
  return a.v;
}

function constInts(ctx: RuleContext, i: number): readonly number[] {
  const v = input(ctx, i);
  if (!v.constInts) throw new Error(`${ctx.node.op}: input ${i} must be a constant`);
  return v.constInts;
}

/** A unary op whose constructor may not exist in ops.ts (the rule only needs the node). */
function unaryNode(op: string, x: Value): Value {
  return x.graph.node(op, [x], [{ dtype: x.dtype, shape: x.shape }])[0];
}

function floatAttr(ctx: RuleContext, name: string, fallback: number): number {
  const a = ctx.node.attrs[name];
  if (!a) return fallback;
  if (a.kind !== 'float') throw new Error(`${ctx.node.op}: float attribute ${name} expected`);
  return a.v;
}

function optIntAttr(ctx: RuleContext, name: string, fallback: number): number {
  const a = ctx.node.attrs[name];
  return a && a.kind === 'int' ? a.v : fallback;
}

function gatherND(data: Value, indices: Value, outShape: Value['shape']): Value {
  return data.graph.node('GatherND', [data, indices], [{ dtype: data.dtype, shape: outShape }])[0];
}

/** The same values reshaped to `like`'s runtime shape (reshape, squeeze, unsqueeze, identity). */
const reshapeBack: GradRule = (ctx) => {
  const { x, dy } = single(ctx);
  return [o.reshape(dy, o.shapeOf(x), x.shape)];
};

/** Reduction gradient: put the reduced axes back (if dropped) and broadcast over them. */
function expandReduced(ctx: RuleContext, axes: readonly number[], scale: Value | null): Value {
  const { x, dy } = single(ctx);
  const keep = intAttr(ctx, 'keepdims') === 1;
  let d = keep ? dy : o.unsqueeze(dy, [...axes]);
  if (scale) d = o.mul(d, scale);
  return o.expand(d, o.shapeOf(x), x.shape);
}

export const RULES: Record<string, GradRule> = {
  Identity: (ctx) => [single(ctx).dy],
  Reshape: reshapeBack,
  Squeeze: reshapeBack,
  Unsqueeze: reshapeBack,

  Add: (ctx) => {
    const dy = ctx.dOut[0]!;
    return [ctx.needs(0) ? unbroadcast(dy, input(ctx, 0)) : null, ctx.needs(1) ? unbroadcast(dy, input(ctx, 1)) : null];
  },
  Sub: (ctx) => {
    const dy = ctx.dOut[0]!;
    return [ctx.needs(0) ? unbroadcast(dy, input(ctx, 0)) : null, ctx.needs(1) ? unbroadcast(o.neg(dy), input(ctx, 1)) : null];
  },
  Mul: (ctx) => {
    const dy = ctx.dOut[0]!;
    const [a, b] = [input(ctx, 0), input(ctx, 1)];
    return [ctx.needs(0) ? unbroadcast(o.mul(dy, b), a) : null, ctx.needs(1) ? unbroadcast(o.mul(dy, a), b) : null];
  },
  Div: (ctx) => {
    const dy = ctx.dOut[0]!;
    const [a, b] = [input(ctx, 0), input(ctx, 1)];
    const y = ctx.node.outputs[0];
    return [ctx.needs(0) ? unbroadcast(o.div(dy, b), a) : null, ctx.needs(1) ? unbroadcast(o.neg(o.div(o.mul(dy, y), b)), b) : null];
  },
  Pow: (ctx) => {
    if (ctx.needs(1)) throw new Error('Pow: gradient with respect to the exponent is not supported');
    const { x, dy } = single(ctx);
    const p = input(ctx, 1);
    return [unbroadcast(o.mul(dy, o.mul(p, o.pow(x, o.sub(p, 1)))), x)];
  },
  Neg: (ctx) => [o.neg(single(ctx).dy)],
  Exp: (ctx) => {
    const { y, dy } = single(ctx);
    return [o.mul(dy, y)];
  },
  Log: (ctx) => {
    const { x, dy } = single(ctx);
    return [o.div(dy, x)];
  },
  Sqrt: (ctx) => {
    const { y, dy } = single(ctx);
    return [o.div(o.mul(dy, 0.5), y)];
  },
  Tanh: (ctx) => {
    const { y, dy } = single(ctx);
    return [o.mul(dy, o.sub(y.graph.constFloat(1), o.mul(y, y)))];
  },
  Sigmoid: (ctx) => {
    const { y, dy } = single(ctx);
    return [o.mul(dy, o.mul(y, o.sub(y.graph.constFloat(1), y)))];
  },
  Cast: (ctx) => {
    const { x, dy } = single(ctx);
    return [o.cast(dy, x.dtype)];
  },
  Where: (ctx) => {
    const dy = ctx.dOut[0]!;
    const cond = input(ctx, 0);
    const zero = dy.graph.constFloat(0);
    return [
      null,
      ctx.needs(1) ? unbroadcast(o.where(cond, dy, zero), input(ctx, 1)) : null,
      ctx.needs(2) ? unbroadcast(o.where(cond, zero, dy), input(ctx, 2)) : null,
    ];
  },

  MatMul: (ctx) => {
    const dy = ctx.dOut[0]!;
    const [a, b] = [input(ctx, 0), input(ctx, 1)];
    let da: Value | null = null;
    let db: Value | null = null;
    if (ctx.needs(0)) da = unbroadcast(o.matmul(dy, o.transposeLast2(b)), a);
    if (ctx.needs(1)) {
      const [k, n] = [b.shape[b.rank - 2], b.shape[b.rank - 1]];
      if (b.rank === 2 && a.rank > 2 && typeof k === 'number' && typeof n === 'number') {
        // A weight shared across the batch: one GEMM over all rows instead of a batched
        // product followed by a sum.
        db = o.gemm(o.reshape(a, [-1, k]), o.reshape(dy, [-1, n]), { transA: true });
      } else {
        db = unbroadcast(o.matmul(o.transposeLast2(a), dy), b);
      }
    }
    return [da, db];
  },

  ReduceSum: (ctx) => [expandReduced(ctx, constInts(ctx, 1), null)],
  ReduceMean: (ctx) => {
    const { x, y } = single(ctx);
    const axes = intsAttr(ctx, 'axes');
    const dims = axes.map((a) => x.shape[a]);
    const scale = dims.every((d) => typeof d === 'number')
      ? x.graph.constFloat(1 / (dims as number[]).reduce((p, q) => p * q, 1))
      : o.div(o.cast(o.sizeOf(y), x.dtype), o.cast(o.sizeOf(x), x.dtype));
    return [expandReduced(ctx, axes, scale)];
  },

  Softmax: (ctx) => {
    const { y, dy } = single(ctx);
    const axis = intAttr(ctx, 'axis');
    return [o.mul(y, o.sub(dy, o.reduceSum(o.mul(dy, y), [axis], true)))];
  },
  LogSoftmax: (ctx) => {
    const { y, dy } = single(ctx);
    const axis = intAttr(ctx, 'axis');
    return [o.sub(dy, o.mul(o.exp(y), o.reduceSum(dy, [axis], true)))];
  },

  Gather: (ctx) => {
    const { x, dy } = single(ctx);
    const axis = intAttr(ctx, 'axis') < 0 ? intAttr(ctx, 'axis') + x.rank : intAttr(ctx, 'axis');
    const idx = input(ctx, 1);
    // Rows picked more than once (a token used twice) must add up: ScatterND with reduction add.
    if (axis === 0) return [o.scatterNDAdd(o.zerosLike(x), o.unsqueeze(idx, [-1]), dy), null];
    // Another axis: bring it to the front of x (and the index axes to the front of dy), scatter there,
    // and move it back.
    const k = idx.rank;
    const xPerm = [axis, ...[...Array(x.rank).keys()].filter((i) => i !== axis)];
    const dyPerm = [...Array(k).keys()].map((i) => axis + i);
    for (let i = 0; i < dy.rank; i++) if (i < axis || i >= axis + k) dyPerm.push(i);
    const xt = o.transpose(x, xPerm);
    const scattered = o.scatterNDAdd(o.zerosLike(xt), o.unsqueeze(idx, [-1]), o.transpose(dy, dyPerm));
    const inv = new Array<number>(x.rank);
    xPerm.forEach((p, i) => (inv[p] = i));
    return [o.transpose(scattered, inv), null];
  },
  GatherElements: (ctx) => {
    const { x, dy } = single(ctx);
    return [o.scatterElementsAdd(o.zerosLike(x), input(ctx, 1), dy, intAttr(ctx, 'axis')), null];
  },

  Transpose: (ctx) => {
    const { dy } = single(ctx);
    const perm = intsAttr(ctx, 'perm');
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    return [o.transpose(dy, inv)];
  },
  Expand: (ctx) => {
    const { x, dy } = single(ctx);
    return [unbroadcast(dy, x), null];
  },
  Concat: (ctx) => {
    const dy = ctx.dOut[0]!;
    const axis = intAttr(ctx, 'axis');
    const xs = ctx.node.inputs.map((v) => v!);
    const sizes = o.concat(
      xs.map((x) => o.dimOf(x, axis)),
      0,
    );
    return o.split(
      dy,
      sizes,
      axis,
      xs.map((x) => x.shape),
    );
  },
  Split: (ctx) => {
    const axis = intAttr(ctx, 'axis');
    const parts = ctx.node.outputs.map((out, i) => ctx.dOut[i] ?? o.zerosLike(out));
    return [o.concat(parts, axis), null];
  },
  Slice: (ctx) => {
    const { x, dy } = single(ctx);
    const starts = constInts(ctx, 1);
    const axes = constInts(ctx, 3);
    // Zero-pad the gradient back: `start` zeros before, the rest after (computed at run time so
    // a slice of a named dim works too).
    const before = new Array<number>(x.rank).fill(0);
    axes.forEach((a, i) => (before[a] = starts[i]));
    const g = x.graph;
    const after = o.sub(o.sub(o.shapeOf(x), o.shapeOf(dy)), g.constInts(before));
    return [o.pad(dy, o.concat([g.constInts(before), after], 0), x.shape), null, null, null];
  },

  // ---- added for the Qwen2-VL definition ------------------------------------------------------

  /** d erf(x)/dx = 2/√π · exp(−x²). */
  Erf: (ctx) => {
    const { x, dy } = single(ctx);
    return [o.mul(dy, o.mul(o.exp(o.neg(o.mul(x, x))), 2 / Math.sqrt(Math.PI)))];
  },
  Sin: (ctx) => {
    const { x, dy } = single(ctx);
    return [o.mul(dy, unaryNode('Cos', x))];
  },
  Cos: (ctx) => {
    const { x, dy } = single(ctx);
    return [o.neg(o.mul(dy, unaryNode('Sin', x)))];
  },
  /** d(1/x) = −dy/x² = −dy·y². */
  Reciprocal: (ctx) => {
    const { y, dy } = single(ctx);
    return [o.neg(o.mul(dy, o.mul(y, y)))];
  },
  /** Inclusive (exclusive) cumulative sum: the gradient is the same sum taken the other way. */
  CumSum: (ctx) => {
    const { dy } = single(ctx);
    const axis = input(ctx, 1);
    const attrs = {
      exclusive: { kind: 'int' as const, v: optIntAttr(ctx, 'exclusive', 0) },
      reverse: { kind: 'int' as const, v: 1 - optIntAttr(ctx, 'reverse', 0) },
    };
    return [dy.graph.node('CumSum', [dy, axis], [{ dtype: dy.dtype, shape: dy.shape }], attrs)[0], null];
  },
  /** Sum the copies: dy viewed as [r0, d0, r1, d1, …] summed over the repeat axes (constant repeats). */
  Tile: (ctx) => {
    const { x, dy } = single(ctx);
    const repeats = constInts(ctx, 1);
    const g = x.graph;
    const parts: Value[] = [];
    for (let i = 0; i < x.rank; i++) parts.push(g.constInts([repeats[i]]), o.dimOf(x, i));
    const split = o.reshape(
      dy,
      o.concat(parts, 0),
      x.shape.flatMap((d, i) => [repeats[i], d]),
    );
    return [
      o.reduceSum(
        split,
        [...Array(x.rank).keys()].map((i) => 2 * i),
        false,
      ),
      null,
    ];
  },
  GatherND: (ctx) => {
    const { x, dy } = single(ctx);
    if (optIntAttr(ctx, 'batch_dims', 0) !== 0) throw new Error('GatherND: gradient only for batch_dims 0');
    return [o.scatterNDAdd(o.zerosLike(x), input(ctx, 1), dy), null];
  },
  /** reduction none: overwritten positions get no gradient; reduction add: data passes dy through. */
  ScatterND: (ctx) => {
    const dy = ctx.dOut[0]!;
    const [idx, updates] = [input(ctx, 1), input(ctx, 2)];
    const reduction = ctx.node.attrs.reduction;
    const mode = reduction && reduction.kind === 'string' ? reduction.v : 'none';
    if (mode !== 'none' && mode !== 'add') throw new Error(`ScatterND: gradient for reduction ${mode} is not supported`);
    const dData = !ctx.needs(0)
      ? null
      : mode === 'add'
        ? dy
        : dy.graph.node('ScatterND', [dy, idx, o.zerosLike(updates)], [{ dtype: dy.dtype, shape: dy.shape }])[0];
    return [dData, null, ctx.needs(2) ? gatherND(dy, idx, updates.shape) : null];
  },
  /** Y = α·op(A)·op(B) + β·C. */
  Gemm: (ctx) => {
    const dy = ctx.dOut[0]!;
    const [a, b] = [input(ctx, 0), input(ctx, 1)];
    const c = ctx.node.inputs[2] ?? null;
    const alpha = floatAttr(ctx, 'alpha', 1);
    const beta = floatAttr(ctx, 'beta', 1);
    const tA = optIntAttr(ctx, 'transA', 0) === 1;
    const tB = optIntAttr(ctx, 'transB', 0) === 1;
    const scaled = (v: Value, s: number) => (s === 1 ? v : o.mul(v, s));
    let da: Value | null = null;
    let db: Value | null = null;
    if (ctx.needs(0)) da = scaled(tA ? o.gemm(b, dy, { transA: tB, transB: true }) : o.gemm(dy, b, { transB: !tB }), alpha);
    if (ctx.needs(1)) db = scaled(tB ? o.gemm(dy, a, { transA: true, transB: tA }) : o.gemm(a, dy, { transA: !tA }), alpha);
    const dc = c && ctx.needs(2) ? unbroadcast(scaled(dy, beta), c) : null;
    return [da, db, dc];
  },
};
