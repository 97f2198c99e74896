// The serving graphs made from the one Qwen2-VL definition, in transformers.js's layout (names,
// inputs and outputs of its `vision_encoder`, `embed_tokens` and `decoder_model_merged` sessions)
// so that exporting to it stays cheap:
//   vision_encoder  pixel_values [num_patches, C·T·P·P], grid_thw int64 [num_images, 3]
//                   → image_features [num_patches / m², hidden]
//   embed_tokens    input_ids int64 [batch_size, sequence_length] → inputs_embeds [B, S, hidden]
//   decoder         inputs_embeds [B, S, H], attention_mask int64 [B, total_sequence_length],
//                   position_ids int64 [3, B, S], past_key_values.{i}.key|value [batch_size, kv, past, hd]
//                   → logits, present.{i}.key|value
import { Graph } from '../../graph/builder.ts';
import { writeOnnx, type WriteOnnxOptions, type WrittenOnnx } from '../../graph/write-onnx.ts';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import * as o from '../../graph/ops.ts';
import type { Qwen2VLConfig } from './config.ts';
import { embedTokens, finalNorm, lmHead, textModel, type KeyValue, type PresentMode } from './decoder.ts';
import { Qwen2VLParams, type WeightSource } from './params.ts';
import { visionTower } from './vision.ts';

export interface VisionGraphOptions {
  /** Also output patch_embeds, vision_block.{i} [N, E] (golden checks). */
  debugOutputs?: boolean;
}

export function buildVisionEncoderGraph(c: Qwen2VLConfig, source: WeightSource, opts: VisionGraphOptions = {}): Graph {
  const g = new Graph('qwen2vl_vision_encoder');
  const p = new Qwen2VLParams(g, c, source);
  const pixels = g.input('pixel_values', 'float32', ['num_patches', c.vision.patchDim]);
  const grid = g.input('grid_thw', 'int64', ['num_images', 3]);
  const out = visionTower(p, pixels, grid);
  g.output(out.features, 'image_features');
  if (opts.debugOutputs) {
    g.output(out.patchEmbeds, 'patch_embeds');
    out.blocks.forEach((b, i) => g.output(b, `vision_block.${i}`));
  }
  return g;
}

export function buildEmbedTokensGraph(c: Qwen2VLConfig, source: WeightSource): Graph {
  const g = new Graph('qwen2vl_embed_tokens');
  const p = new Qwen2VLParams(g, c, source);
  const ids = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  g.output(embedTokens(p, ids), 'inputs_embeds');
  return g;
}

export interface DecoderGraphOptions {
  /** 'all': logits [B, S, V] (transformers.js); 'last': [B, 1, V], the last position only. Default 'all'. */
  logits?: 'all' | 'last';
  /** 'full': present = past + new (transformers.js); 'new': only the positions fed now. Default 'full'. */
  present?: PresentMode;
  /** Also output hidden.{i} (each layer's output) and last_hidden (after the final norm). */
  debugOutputs?: boolean;
}

export function pastKeyValueNames(layer: number): { key: string; value: string } {
  return { key: `past_key_values.${layer}.key`, value: `past_key_values.${layer}.value` };
}

export function presentNames(layer: number): { key: string; value: string } {
  return { key: `present.${layer}.key`, value: `present.${layer}.value` };
}

export function buildDecoderGraph(c: Qwen2VLConfig, source: WeightSource, opts: DecoderGraphOptions = {}): Graph {
  const t = c.text;
  const g = new Graph('qwen2vl_decoder');
  const p = new Qwen2VLParams(g, c, source);
  const embeds = g.input('inputs_embeds', 'float32', ['batch_size', 'sequence_length', t.hiddenSize]);
  const mask = g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
  const positions = g.input('position_ids', 'int64', [3, 'batch_size', 'sequence_length']);
  const past: KeyValue[] = [];
  for (let l = 0; l < t.numLayers; l++) {
    const n = pastKeyValueNames(l);
    // The batch axis is named exactly `batch_size`: transformers.js makes the first step's empty
    // cache from these declared shapes, batch_size → 1 and any other name → 0.
    past.push({
      key: g.input(n.key, 'float32', ['batch_size', t.numKvHeads, 'past_sequence_length', t.headDim]),
      value: g.input(n.value, 'float32', ['batch_size', t.numKvHeads, 'past_sequence_length', t.headDim]),
    });
  }
  const out = textModel(p, { embeds, attentionMask: mask, positionIds: positions, past, present: opts.present ?? 'full' });
  const hidden = opts.logits === 'last' ? o.gather(out.last, g.constInts([-1]), 1) : out.last;
  const normed = finalNorm(p, hidden);
  g.output(lmHead(p, normed), 'logits');
  out.presents.forEach((kv, l) => {
    const n = presentNames(l);
    g.output(kv.key, n.key);
    g.output(kv.value, n.value);
  });
  if (opts.debugOutputs) {
    out.layers.forEach((h, l) => g.output(h, `hidden.${l}`));
    g.output(normed, 'last_hidden');
  }
  return g;
}

export interface ServingGraphOptions extends DecoderGraphOptions, VisionGraphOptions {}

export interface Qwen2VLServingGraphs {
  vision: Graph;
  embed: Graph;
  decoder: Graph;
}

/** The three serving graphs, weights baked in (arrays) or referenced in an external-data file. */
export function buildQwen2VLServingGraphs(c: Qwen2VLConfig, source: WeightSource, opts: ServingGraphOptions = {}): Qwen2VLServingGraphs {
  return {
    vision: buildVisionEncoderGraph(c, source, opts),
    embed: buildEmbedTokensGraph(c, source),
    decoder: buildDecoderGraph(c, source, opts),
  };
}

/** File names inside `<dir>/onnx/`, as transformers.js names its fp32 sessions. */
export const SERVING_FILES = {
  vision: 'vision_encoder.onnx',
  embed: 'embed_tokens.onnx',
  decoder: 'decoder_model_merged.onnx',
} as const;

/**
 * Writes the graphs to `<dir>/onnx/`. A graph whose inline weights would pass protobuf's 2 GB limit
 * goes out with external data (`<file>_data`); `externalData: 'always'` forces it.
 */
export async function writeQwen2VLServingGraphs(
  dir: string,
  graphs: Qwen2VLServingGraphs,
  opts: WriteOnnxOptions = {},
): Promise<Record<keyof Qwen2VLServingGraphs, WrittenOnnx>> {
  const onnxDir = join(dir, 'onnx');
  await mkdir(onnxDir, { recursive: true });
  return {
    vision: await writeOnnx(join(onnxDir, SERVING_FILES.vision), graphs.vision, opts),
    embed: await writeOnnx(join(onnxDir, SERVING_FILES.embed), graphs.embed, opts),
    decoder: await writeOnnx(join(onnxDir, SERVING_FILES.decoder), graphs.decoder, opts),
  };
}
