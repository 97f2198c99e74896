// Reverse-mode autodiff over a Graph: walks the nodes backwards from seeded outputs and appends
// gradient nodes to the same graph. Per-op rules live in rules.ts; broadcasting is undone in one
// place (`unbroadcast`, gradient-rule.ts), so no rule has to think about it.
import type { Graph, Node, Value } from '../graph/builder.ts';
import { dimsEqual } from '../graph/builder.ts';
import * as o from '../graph/ops.ts';
import { RULES } from './rules.ts';

export interface GradSeed {
  /** A value of the forward graph, e.g. per-token log-probs. */
  value: Value;
  /** The upstream gradient dL/d(value), usually a graph input of the same shape. */
  grad: Value;
}

/** Ops whose outputs carry no gradient (shape queries, comparisons, integer arithmetic). */
const NON_DIFFERENTIABLE = new Set(['Shape', 'Size', 'Equal', 'Less', 'Greater', 'And', 'Or', 'Not', 'ConstantOfShape', 'Range']);

/**
 * Appends the backward pass for `seeds` to the graph and returns d(sum of seeds·values)/d(w)
 * for every `wrt` value that the seeds depend on (others are absent from the map).
 */
export function backward(graph: Graph, seeds: GradSeed[], wrt: Value[]): Map<Value, Value> {
  // 1. Which values depend on a differentiated value (forward sweep).
  const live = new Set<Value>(wrt);
  const forwardNodes = [...graph.nodes]; // gradient nodes appended below are not revisited
  for (const n of forwardNodes) {
    if (NON_DIFFERENTIABLE.has(n.op)) continue;
    if (n.inputs.some((i) => i && live.has(i))) n.outputs.forEach((v) => live.add(v));
  }
  // 2. Which values reach a seed (backward sweep); a node runs its rule only if both hold.
  const reaches = new Set<Value>(seeds.map((s) => s.value));
  for (let k = forwardNodes.length - 1; k >= 0; k--) {
    const n = forwardNodes[k];
    if (n.outputs.some((v) => reaches.has(v))) n.inputs.forEach((i) => i && reaches.add(i));
  }

  const grads = new Map<Value, Value>();
  const accumulate = (v: Value, g: Value) => {
    if (!dimsEqual(g.shape, v.shape) && g.shape.length === v.shape.length) {
      // Same rank but a named dim spelled differently: trust the forward value's shape.
    }
    const prev = grads.get(v);
    grads.set(v, prev ? o.add(prev, g) : g);
  };
  for (const s of seeds) accumulate(s.value, s.grad);

  // 3. Rules, in reverse topological order.
  for (let k = forwardNodes.length - 1; k >= 0; k--) {
    const n = forwardNodes[k];
    if (NON_DIFFERENTIABLE.has(n.op)) continue;
    const dOut = n.outputs.map((v) => grads.get(v) ?? null);
    if (dOut.every((d) => d === null)) continue;
    const needs = (i: number) => {
      const v = n.inputs[i];
      return !!v && live.has(v) && reaches.has(v);
    };
    if (!n.inputs.some((_, i) => needs(i))) continue;
    const rule = RULES[n.op];
    if (!rule) throw new Error(`autodiff: no gradient rule for ${n.op}`);
    const dIn = rule({ node: n, dOut, needs });
    n.inputs.forEach((v, i) => {
      const d = dIn[i];
      if (v && d && needs(i)) accumulate(v, d);
    });
  }

  const result = new Map<Value, Value>();
  for (const w of wrt) {
    const g = grads.get(w);
    if (g) result.set(w, g);
  }
  return result;
}
