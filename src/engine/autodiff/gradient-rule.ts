// What a per-op gradient rule sees and returns, and `unbroadcast`, the one place where a gradient
// shaped like a broadcast result is reduced back to an input's own shape.
import type { Node, Value } from '../graph/builder.ts';
import { dimsEqual } from '../graph/builder.ts';
import * as o from '../graph/ops.ts';

export interface RuleContext {
  node: Node;
  /** Gradients of the node's outputs (null where nothing downstream needs that output). */
  dOut: readonly (Value | null)[];
  /** Whether input i needs a gradient (it depends on a differentiated value). */
  needs(i: number): boolean;
}

export type GradRule = (ctx: RuleContext) => readonly (Value | null | undefined)[];

/**
 * Sums `grad` (shaped like a broadcast result) back to `target`'s shape: leading axes that
 * `target` lacks and axes where `target` has a static 1 are reduced.
 */
export function unbroadcast(grad: Value, target: Value): Value {
  if (dimsEqual(grad.shape, target.shape)) return grad;
  const lead = grad.rank - target.rank;
  if (lead < 0) throw new Error(`unbroadcast: gradient ${grad} has lower rank than ${target}`);
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    if (i < lead) axes.push(i);
    else if (target.shape[i - lead] === 1 && grad.shape[i] !== 1) axes.push(i);
  }
  let g = axes.length ? o.reduceSum(grad, axes, true) : grad;
  if (lead > 0 || !dimsEqual(g.shape, target.shape)) {
    g = target.shape.every((d) => typeof d === 'number') ? o.reshape(g, target.shape as number[]) : o.reshape(g, o.shapeOf(target), target.shape);
  }
  return g;
}
