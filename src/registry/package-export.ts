// Writes a complete model package (DESIGN §5) from a trained model: serving ONNX graphs,
// model.safetensors, config.json, tokenizer.json and the manifest with every file's sha256.
import type { ModelConfig } from '../engine/model/config.ts';
import type { Weights } from '../engine/model/params.ts';
import { encodeSafetensors, type SafetensorsTensors } from '../engine/export/safetensors.ts';
import { exportServingOnnx } from '../engine/export/onnx-export.ts';
import { writeModelPackage, type ModelPackageFields } from './model-package.ts';
import type { JsonObject, Manifest } from './manifest.ts';
import type { ParamSpec } from '../engine/model/params.ts';

export function weightsToSafetensors(specs: readonly ParamSpec[], weights: Weights): SafetensorsTensors {
  const tensors: SafetensorsTensors = {};
  for (const s of specs) {
    const data = weights.get(s.name);
    if (!data) throw new Error(`weights: ${s.name} is missing`);
    tensors[s.name] = { dtype: 'F32', shape: [...s.shape], data };
  }
  return tensors;
}

export interface ExportPackageInput {
  config: ModelConfig;
  specs: readonly ParamSpec[];
  weights: Weights;
  /** The tokenizer.json the model was trained with, as bytes. */
  tokenizerJson: Uint8Array;
  manifest: Omit<ModelPackageFields, 'preset'>;
}

export async function exportModelPackage(dir: string, input: ExportPackageInput): Promise<Manifest> {
  const { config, specs, weights, tokenizerJson, manifest } = input;
  return writeModelPackage(dir, {
    ...manifest,
    preset: config.preset,
    config: config as unknown as JsonObject,
    files: {
      'tokenizer.json': tokenizerJson,
      'model.safetensors': encodeSafetensors(weightsToSafetensors(specs, weights), { format: 'pt' }),
      ...exportServingOnnx(config, weights),
    },
  });
}
