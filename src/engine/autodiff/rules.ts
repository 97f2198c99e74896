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
  if (!a || a.kind !== 'int') throw new Error(`${ctx.node.op}: int attribute ${name} missing`);
  return a.v;
}

function intsAttr(ctx: RuleContext, name: string): number[] {
  const a = ctx.node.attrs[name];
  if (!a || a.kind !== 'ints') throw new Error(`${ctx.node.op}: ints attribute ${name} missing`);
  return a.v;
}

function constInts(ctx: RuleContext, i: number): readonly number[] {
  const v = input(ctx, i);
  if (!v.constInts) throw new Error(`${ctx.node.op}: input ${i} must be a constant`);
  return v.constInts;
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
    return [
      ctx.needs(0) ? unbroadcast(o.div(dy, b), a) : null,
      ctx.needs(1) ? unbroadcast(o.neg(o.div(o.mul(dy, y), b)), b) : null,
    ];
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
    if (intAttr(ctx, 'axis') !== 0) throw new Error('Gather: gradient only along axis 0');
    const idx = input(ctx, 1);
    // Rows picked more than once (a token used twice) must add up: ScatterND with reduction add.
    return [o.scatterNDAdd(o.zerosLike(x), o.unsqueeze(idx, [-1]), dy), null];
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
    const sizes = o.concat(xs.map((x) => o.dimOf(x, axis)), 0);
    return o.split(dy, sizes, axis, xs.map((x) => x.shape));
  },
  Split: (ctx) => {
    const x = input(ctx, 0);
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
};
