// A tiny model with deterministic, deliberately large weights (so logits are far from uniform and a
// wrong mask or position shows up), opened as serving sessions. Shared by engine and runtime tests.
import { presetConfig, numPatches, patchDim, type ModelConfig } from '../../src/engine/model/config.ts';
import { initWeights, type ParamSpec, type Weights } from '../../src/engine/model/params.ts';
import { rng } from '../../src/engine/random.ts';
import { parameterSpecs } from '../../src/engine/model/vlm.ts';
import { exportServingOnnx } from '../../src/engine/export/onnx-export.ts';
import { openSession } from '../../src/engine/ort/session.ts';
import type { ServingSessions } from '../../src/runtime/generate.ts';

export const TINY_VOCAB = 24;

export interface TinyModel {
  config: ModelConfig;
  specs: ParamSpec[];
  weights: Weights;
}

export function tinyModel(seed = 7, scale = 8): TinyModel {
  const config = presetConfig('tiny', TINY_VOCAB);
  const specs = parameterSpecs(config);
  const weights = initWeights(specs, seed, config.text.layers);
  for (const s of specs) {
    const w = weights.get(s.name)!;
    for (let i = 0; i < w.length; i++) {
      if (s.init === 'ones') w[i] = 1 + 0.2 * Math.sin(i + 1);
      else if (s.init === 'zeros') w[i] = 0.05 * Math.cos(i + 1);
      else w[i] *= scale;
    }
  }
  return { config, specs, weights };
}

export function randomPatches(config: ModelConfig, rows: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: rows * numPatches(config) * patchDim(config) }, () => r() * 2 - 1);
}

export async function servingSessions(m: TinyModel): Promise<ServingSessions> {
  const onnx = exportServingOnnx(m.config, m.weights);
  const vision = await openSession(onnx['onnx/vision_encoder.onnx']);
  const decoder = await openSession(onnx['onnx/decoder.onnx']);
  return { config: m.config, vision: vision.session, decoder: decoder.session };
}
