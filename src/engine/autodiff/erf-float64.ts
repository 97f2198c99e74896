// erf in float64 from ops that ONNX Runtime's CPU provider runs in float64, for gradient checks:
// ORT has no float64 Erf kernel, and the exact GELU of Qwen2-VL's merger uses Erf. A check builds its
// graph with the real Erf node, lets autodiff apply the Erf rule, and then `lowerErfForFloat64`
// swaps each Erf node for this composition, so the finite differences see erf itself (to float64
// rounding) while the analytic gradient is the rule's.
//
//   |x| < 2:  erf(x) = 2/√π · x · Σₙ (−1)ⁿ x²ⁿ / (n!(2n+1)), 40 terms by Horner's rule. At |x| = 2
//             the largest term is ≈ 3.2 and the truncation ≈ 1e-26, so the sum keeps full precision.
//   |x| ≥ 2:  erf(x) = sign(x)·(1 − erfc(|x|)), erfc(x) = e^(−x²)/√π · 1/(x + ½/(x + 1/(x + 3⁄2/(x + …)))),
//             the continued fraction evaluated from its 60th term back, which is converged to 1e-16
//             relative from x = 2 on.
// Both branches are computed for every element and a Where picks one; the branch not picked may
// overflow there without effect.
import type { Graph, Value } from '../graph/builder.ts';
import * as o from '../graph/ops.ts';

const SERIES_TERMS = 40;
const FRACTION_TERMS = 60;
const SWITCH = 2;

function seriesCoefficient(n: number): number {
  let factorial = 1;
  for (let k = 2; k <= n; k++) factorial *= k;
  return (n % 2 === 0 ? 1 : -1) / (factorial * (2 * n + 1));
}

export function erfFloat64(x: Value): Value {
  const g = x.graph;
  const negative = o.less(x, 0);
  const ax = o.where(negative, o.neg(x), x);
  const t = o.mul(x, x);
  let p = o.add(o.mul(t, seriesCoefficient(SERIES_TERMS - 1)), seriesCoefficient(SERIES_TERMS - 2));
  for (let n = SERIES_TERMS - 3; n >= 0; n--) p = o.add(o.mul(p, t), seriesCoefficient(n));
  const small = o.mul(o.mul(x, p), 2 / Math.sqrt(Math.PI));
  let f = ax;
  for (let k = FRACTION_TERMS; k >= 1; k--) f = o.add(ax, o.div(g.constFloat(k / 2), f));
  const erfc = o.div(o.mul(o.exp(o.neg(t)), 1 / Math.sqrt(Math.PI)), f);
  const large = o.mul(o.sub(g.constFloat(1), erfc), o.where(negative, g.constFloat(-1), g.constFloat(1)));
  return o.where(o.less(ax, SWITCH), small, large);
}

/** Replaces every Erf node of `g` (in place, same output value) by `erfFloat64` of its input. */
export function lowerErfForFloat64(g: Graph): void {
  for (let i = 0; i < g.nodes.length; i++) {
    const n = g.nodes[i];
    if (n.op !== 'Erf') continue;
    const before = g.nodes.length;
    const value = erfFloat64(n.inputs[0]!);
    // The new nodes read only the Erf's input and constants, so they can run where the Erf ran.
    const added = g.nodes.splice(before);
    g.nodes.splice(i, 1, ...added, { op: 'Identity', inputs: [value], outputs: n.outputs, attrs: {} });
    i += added.length;
  }
}
