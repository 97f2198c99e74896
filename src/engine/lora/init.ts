// Initial adapter weights, as PEFT's LoraLayer.reset_lora_parameters makes them:
//
//   init_lora_weights = true       A ~ kaiming_uniform_(a=√5), B = 0
//   init_lora_weights = "gaussian" A ~ N(0, (1/r)²),         B = 0
//   init_lora_weights = false      A and B as a fresh nn.Linear (kaiming_uniform_(a=√5) for both)
//
// torch.nn.init.kaiming_uniform_(w, a) draws U(−b, b) with b = gain·√(3/fan_in), gain = √(2/(1+a²))
// (leaky_relu), i.e. b = √(6/((1+a²)·fan_in)); with a = √5 that is 1/√fan_in. fan_in is the weight's
// size(1) times its receptive field: `in` for A [r, in] (c·k… for a convolution's A), `r` for B.
// The draws come from the project's seeded generator, so a seed gives the same adapter every run.
import { gaussian, type Weights } from '../model/params.ts';
import { rng } from '../random.ts';
import type { LoraConfig } from './config.ts';
import type { LoraTarget } from './targets.ts';

/** PEFT's (and nn.Linear's) negative slope for the Kaiming bound. */
export const KAIMING_A = Math.sqrt(5);

/** b of kaiming_uniform_(a) for a given fan_in. */
export function kaimingUniformBound(fanIn: number, a = KAIMING_A): number {
  return Math.sqrt(6 / ((1 + a * a) * fanIn));
}

function uniform(n: number, bound: number, rand: () => number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = (2 * rand() - 1) * bound;
  return w;
}

/** A and B for every target, keyed by `target.aName` / `target.bName` (flat row-major data). */
export function initLoraWeights(targets: readonly LoraTarget[], config: Pick<LoraConfig, 'r' | 'init_lora_weights'>, seed: number): Weights {
  const rand = rng(seed);
  const normal = gaussian(rand);
  const { r } = config;
  const out: Weights = new Map();
  for (const t of targets) {
    const nA = r * t.inFeatures;
    const nB = t.outFeatures * r;
    let a: Float32Array;
    if (config.init_lora_weights === 'gaussian') {
      a = new Float32Array(nA);
      for (let i = 0; i < nA; i++) a[i] = normal() / r;
    } else {
      a = uniform(nA, kaimingUniformBound(t.inFeatures), rand);
    }
    const b = config.init_lora_weights === false ? uniform(nB, kaimingUniformBound(r), rand) : new Float32Array(nB);
    out.set(t.aName, a);
    out.set(t.bName, b);
  }
  return out;
}
