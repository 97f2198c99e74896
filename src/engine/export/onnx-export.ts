// From one config + weights to the two serving graphs of a model package (weights baked in as
// initializers), serialised as ONNX.
import { serializeGraph } from '../graph/serialize.ts';
import type { ModelConfig } from '../model/config.ts';
import type { Weights } from '../model/params.ts';
import { buildDecoderGraph, buildVisionGraph } from '../model/vlm.ts';

export interface ServingOnnx {
  'onnx/vision_encoder.onnx': Uint8Array;
  'onnx/decoder.onnx': Uint8Array;
}

export function exportServingOnnx(config: ModelConfig, weights: Weights): ServingOnnx {
  const doc = `clinvqa ${config.preset}`;
  return {
    'onnx/vision_encoder.onnx': serializeGraph(buildVisionGraph(config, weights), doc),
    'onnx/decoder.onnx': serializeGraph(buildDecoderGraph(config, weights), doc),
  };
}
