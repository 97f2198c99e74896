// Folding an adapter into its base: W' = W + scale·B·A (PEFT's merge_and_unload), into a NEW weight
// table. Untouched weights are shared with the base table, not copied, and the base table itself is
// never written, since the frozen base may be serving other models at the same time.
import type { Weights } from '../model/params.ts';
import { loraScale, type LoraConfig } from './config.ts';
import type { LoraTarget } from './targets.ts';

/** scale·B·A as a flat [out, in] array (accumulated in float64). */
export function loraDeltaWeight(target: LoraTarget, a: Float32Array, b: Float32Array, r: number, scale: number): Float64Array {
  const { inFeatures: nIn, outFeatures: nOut } = target;
  if (a.length !== r * nIn) throw new Error(`LoRA merge: ${target.aName} has ${a.length} values, expected ${r}×${nIn}`);
  if (b.length !== nOut * r) throw new Error(`LoRA merge: ${target.bName} has ${b.length} values, expected ${nOut}×${r}`);
  const delta = new Float64Array(nOut * nIn);
  for (let out = 0; out < nOut; out++) {
    const row = out * nIn;
    for (let k = 0; k < r; k++) {
      const coef = scale * b[out * r + k];
      if (coef === 0) continue;
      const aRow = k * nIn;
      for (let i = 0; i < nIn; i++) delta[row + i] += coef * a[aRow + i];
    }
  }
  return delta;
}

/** The base weights with every target's W replaced by W + scale·B·A. */
export function mergeLora(
  base: Weights,
  targets: readonly LoraTarget[],
  adapter: Weights,
  config: Pick<LoraConfig, 'r' | 'lora_alpha' | 'use_rslora'>,
): Weights {
  const scale = loraScale(config);
  const merged: Weights = new Map(base);
  for (const t of targets) {
    const w = base.get(t.weight);
    if (!w) throw new Error(`LoRA merge: base weight ${t.weight} is missing`);
    if (w.length !== t.outFeatures * t.inFeatures) {
      throw new Error(`LoRA merge: base weight ${t.weight} has ${w.length} values, expected ${t.outFeatures}×${t.inFeatures}`);
    }
    const a = adapter.get(t.aName);
    const b = adapter.get(t.bName);
    if (!a || !b) throw new Error(`LoRA merge: adapter tensor ${a ? t.bName : t.aName} is missing`);
    const delta = loraDeltaWeight(t, a, b, config.r, scale);
    const out = new Float32Array(w.length);
    for (let i = 0; i < w.length; i++) out[i] = w[i] + delta[i];
    merged.set(t.weight, out);
  }
  return merged;
}
