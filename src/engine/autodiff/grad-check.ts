// Central finite differences in float64 on ONNX Runtime: the reference every gradient rule, and
// the whole model, is checked against. The scalar checked is sum(output · seed) for a random
// seed, so every element of the output's gradient takes part.
import { Graph, type Value } from '../graph/builder.ts';
import { serializeGraph } from '../graph/serialize.ts';
import { openSession, ort } from '../ort/session.ts';
import { backward } from './backward.ts';

export interface CheckFeed {
  dtype: 'float64' | 'int64';
  data: Float64Array | BigInt64Array;
  dims: number[];
}

export interface GradCheckResult {
  /** Worst |analytic − numeric| / max(|analytic|, |numeric|, floor) over the checked elements. */
  maxRelError: number;
  worst: { input: string; index: number; analytic: number; numeric: number } | null;
  checked: number;
}

export interface GradCheckOptions {
  step?: number;
  /** Elements checked per input (all when the input is smaller); chosen by a fixed stride. */
  samplesPerInput?: number;
  floor?: number;
  /**
   * Rewrites the finished graph (forward and backward) before it runs, e.g. to replace an op that
   * ORT's CPU provider has no float64 kernel for by an exact float64 composition of other ops. The
   * gradient rules have already been applied to the original op by then.
   */
  lower?: (g: Graph) => void;
}

function seeded(n: number, seed: number): Float64Array {
  let s = seed >>> 0;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

/**
 * `build` makes the forward graph on a float64 Graph and returns the output to check and the
 * inputs to differentiate; `feeds` gives every graph input's value.
 */
export async function gradCheck(
  build: (g: Graph) => { output: Value; wrt: Value[] },
  feeds: Record<string, CheckFeed>,
  opts: GradCheckOptions = {},
): Promise<GradCheckResult> {
  const step = opts.step ?? 1e-5;
  const floor = opts.floor ?? 1e-6;
  const tensors: Record<string, ort.Tensor> = {};
  for (const [k, f] of Object.entries(feeds)) tensors[k] = new ort.Tensor(f.dtype, f.data, f.dims);

  // The output's dims may be named; a forward-only run of the same build tells their sizes.
  const probe = new Graph('grad_check_probe', 'float64');
  probe.output(build(probe).output, 'grad_check_y');
  opts.lower?.(probe);
  const probeSession = (await openSession(serializeGraph(probe), { optimization: 'disabled', intraOpThreads: 1 })).session;
  const outDims = [...(await probeSession.run(tensors)).grad_check_y.dims];
  await probeSession.release();

  const g = new Graph('grad_check', 'float64');
  const { output, wrt } = build(g);
  const seedIn = g.input('grad_check_seed', 'float64', output.shape);
  const grads = backward(g, [{ value: output, grad: seedIn }], wrt);
  g.output(output, 'grad_check_y');
  const gradNames = wrt.map((w, i) => {
    const gv = grads.get(w);
    if (!gv) throw new Error(`gradCheck: no gradient reaches ${w.name}`);
    return g.output(gv, `grad_${i}`).name;
  });
  opts.lower?.(g);
  const { session } = await openSession(serializeGraph(g), { optimization: 'disabled', intraOpThreads: 1 });
  const seedData = seeded(
    outDims.reduce((a, b) => a * b, 1),
    7,
  );
  tensors[seedIn.name] = new ort.Tensor('float64', seedData, outDims);

  const objective = async (): Promise<number> => {
    const r = await session.run(tensors, ['grad_check_y']);
    const y = r.grad_check_y.data as Float64Array;
    let s = 0;
    for (let i = 0; i < y.length; i++) s += y[i] * seedData[i];
    return s;
  };

  const analytic = await session.run(tensors, gradNames);
  let result: GradCheckResult = { maxRelError: 0, worst: null, checked: 0 };
  for (let w = 0; w < wrt.length; w++) {
    const name = wrt[w].name;
    const feed = feeds[name];
    if (feed?.dtype !== 'float64') throw new Error(`gradCheck: ${name} needs a float64 feed`);
    const data = feed.data as Float64Array;
    const grad = analytic[gradNames[w]].data as Float64Array;
    const n = data.length;
    const samples = Math.min(n, opts.samplesPerInput ?? n);
    const stride = n / samples;
    for (let s = 0; s < samples; s++) {
      const idx = Math.floor(s * stride + ((w * 7919) % Math.max(1, Math.floor(stride))));
      const keep = data[idx];
      data[idx] = keep + step;
      const fp = await objective();
      data[idx] = keep - step;
      const fm = await objective();
      data[idx] = keep;
      const numeric = (fp - fm) / (2 * step);
      const a = grad[idx];
      const rel = Math.abs(a - numeric) / Math.max(Math.abs(a), Math.abs(numeric), floor);
      result.checked++;
      if (rel > result.maxRelError) result = { ...result, maxRelError: rel, worst: { input: name, index: idx, analytic: a, numeric } };
    }
  }
  await session.release();
  return result;
}

export { seeded as seededUniform };
