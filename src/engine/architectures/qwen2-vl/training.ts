// Qwen2-VL's training graph, made from the same vision tower, decoder and parameter table as the
// serving graphs: per-token log-probs and entropy out and, when asked, the gradient of the trainable
// weights for an upstream gradient on the log-probs.
//
// What is trainable:
//   full — every parameter is a graph input and gets a `grad.<name>` output;
//   lora — the base parameters come from `source` (graph inputs fed from the one copy in memory, or
//          baked/external initializers) and get no gradient; each adapted module's A and B are
//          graph inputs (`<module>.lora_A.weight`, `.lora_B.weight`) and only they get gradients.
//
// Inputs (B rows, S positions, left-padded):
//   pixel_values [num_patches, patchDim], grid_thw int64 [num_images, 3]: every image of the batch,
//     row by row in order (the image processor's output concatenated);
//   input_ids int64 [B, S] with each image's run of image tokens; image_mask int64 [B, S] marks the
//     positions that take the image features, in order (the prompt's image tokens: an image-token id
//     sampled into a completion is embedded as a token, as generation did);
//   attention_mask int64 [B, S] (0 = padding), position_ids int64 [3, B, S] (get_rope_index);
//   targets int64 [B, S]: the token whose log-prob is wanted at each position (the next token).
// Outputs: logprobs [B, S], entropy [B, S] (of the next-token distribution at each position).
// A padded position's outputs are not meaningful (its query sees no key); callers give them zero weight.
import { Graph, type Value } from '../../graph/builder.ts';
import * as o from '../../graph/ops.ts';
import { backward } from '../../autodiff/backward.ts';
import { LoraSource } from '../../lora/graph.ts';
import type { LoraConfig } from '../../lora/config.ts';
import { selectLoraTargets, type LoraTarget } from '../../lora/targets.ts';
import type { Qwen2VLConfig } from './config.ts';
import { embedTokens, finalNorm, lmHead, textModel } from './decoder.ts';
import { Qwen2VLParams, qwen2VLParamTable, type WeightSource } from './params.ts';
import { visionTower } from './vision.ts';

export type Qwen2VLTrainable = { kind: 'full' } | { kind: 'lora'; config: LoraConfig; targets: readonly LoraTarget[] };

export interface Qwen2VLTrainingOptions {
  trainable: Qwen2VLTrainable;
  /** Where the frozen base comes from (LoRA); full fine-tuning needs 'inputs'. Default inputs. */
  source?: WeightSource;
  withGrads: boolean;
  floatType?: 'float32' | 'float64';
  /** In-graph LoRA dropout (adds the int64 input `lora_dropout_seed`); off for scoring. Default true with grads. */
  dropout?: boolean;
  /** Whether batches carry images (the vision tower and its inputs); default true. */
  images?: boolean;
}

export interface Qwen2VLForward {
  logprobs: Value;
  entropy: Value;
  /** The values that get gradients, by tensor name (full: parameters; LoRA: A and B). */
  trainable: Map<string, Value>;
  params: Qwen2VLParams;
  lora: LoraSource | null;
}

/** The LoRA targets of a config, picked from its parameter table with PEFT's rules. */
export function qwen2VLLoraTargets(c: Qwen2VLConfig, config: Pick<LoraConfig, 'target_modules' | 'exclude_modules'>): LoraTarget[] {
  return selectLoraTargets(qwen2VLParamTable(c), config);
}

/** Positions marked in image_mask take the image features in order; the rest their token embedding. */
function mergeImages(imageMask: Value, textEmbeds: Value, features: Value): Value {
  const g = imageMask.graph;
  const isImage = o.cast(imageMask, 'bool'); // [B, S]
  const flat = o.reshape(imageMask, [-1]);
  const order = o.sub(o.cumSum(flat, 0), g.constInts([1], true)); // k-th image position → k
  const index = o.reshape(o.where(o.reshape(isImage, [-1]), order, g.constInts([0], true)), o.shapeOf(imageMask), imageMask.shape);
  const picked = o.gather(features, index, 0); // [B, S, H]
  return o.where(o.unsqueeze(isImage, [2]), picked, textEmbeds);
}

/** The forward pass on `g` (built by the caller, so checks can build it on a float64 graph). */
export function buildQwen2VLForwardOn(
  g: Graph,
  c: Qwen2VLConfig,
  opts: Omit<Qwen2VLTrainingOptions, 'withGrads' | 'floatType'> & { dropout: boolean },
): Qwen2VLForward {
  const source = opts.source ?? { kind: 'inputs' };
  if (opts.trainable.kind === 'full' && !(source.kind === 'inputs' && (source.layout ?? 'hf') === 'hf'))
    throw new Error('full fine-tuning takes the weights as graph inputs in HF layout');
  const p = new Qwen2VLParams(g, c, source);
  let lora: LoraSource | null = null;
  if (opts.trainable.kind === 'lora') {
    lora = new LoraSource(g, opts.trainable.targets, opts.trainable.config, { kind: 'inputs', dropout: opts.dropout });
    p.lora = lora;
  }
  const ids = g.input('input_ids', 'int64', ['batch', 'sequence']);
  const mask = g.input('attention_mask', 'int64', ['batch', 'sequence']);
  const positions = g.input('position_ids', 'int64', [3, 'batch', 'sequence']);
  const targets = g.input('targets', 'int64', ['batch', 'sequence']);
  let embeds = embedTokens(p, ids);
  if (opts.images ?? true) {
    const pixels = g.input('pixel_values', g.floatType, ['num_patches', c.vision.patchDim]);
    const grid = g.input('grid_thw', 'int64', ['num_images', 3]);
    const imageMask = g.input('image_mask', 'int64', ['batch', 'sequence']);
    embeds = mergeImages(imageMask, embeds, visionTower(p, pixels, grid).features);
  }
  const out = textModel(p, { embeds, attentionMask: mask, positionIds: positions, past: null, present: 'full' });
  const logp = o.logSoftmax(lmHead(p, finalNorm(p, out.last)), -1); // [B, S, V]
  const logprobs = o.squeeze(o.gatherElements(logp, o.unsqueeze(targets, [-1]), 2), [2]);
  const entropy = o.neg(o.reduceSum(o.mul(o.exp(logp), logp), [-1], false));

  const trainable = new Map<string, Value>();
  if (lora) {
    const unused = lora.unused();
    if (unused.length > 0) throw new Error(`LoRA targets the network never used: ${unused.map((t) => t.module).join(', ')}`);
    for (const v of lora.adapterValues()) trainable.set(v.name, v);
  } else {
    for (const [name, v] of p.inputs) trainable.set(name, v);
  }
  return { logprobs, entropy, trainable, params: p, lora };
}

export interface Qwen2VLTrainingGraph {
  graph: Graph;
  /** Trainable tensor names in the order their gradients are output. */
  trainable: string[];
  outputs: { logprobs: string; entropy: string; grads: Map<string, string> };
  /** Whether the graph takes `lora_dropout_seed`. */
  dropoutSeed: boolean;
}

/** The training graph; with `withGrads`, an input `grad_logprobs` [B, S] and `grad.<name>` outputs. */
export function buildQwen2VLTrainingGraph(c: Qwen2VLConfig, opts: Qwen2VLTrainingOptions): Qwen2VLTrainingGraph {
  const g = new Graph(opts.withGrads ? 'qwen2vl_train' : 'qwen2vl_logprobs', opts.floatType ?? 'float32');
  const f = buildQwen2VLForwardOn(g, c, { ...opts, dropout: opts.dropout ?? opts.withGrads });
  const logprobs = g.output(f.logprobs, 'logprobs');
  const entropy = g.output(f.entropy, 'entropy');
  const grads = new Map<string, string>();
  if (opts.withGrads) {
    const upstream = g.input('grad_logprobs', g.floatType, ['batch', 'sequence']);
    const values = [...f.trainable.values()];
    const d = backward(g, [{ value: f.logprobs, grad: upstream }], values);
    for (const v of values) {
      const gv = d.get(v);
      if (!gv) throw new Error(`no gradient reaches ${v.name}`);
      grads.set(v.name, g.output(gv, `grad.${v.name}`).name);
    }
  }
  return {
    graph: g,
    trainable: [...f.trainable.keys()],
    outputs: { logprobs: logprobs.name, entropy: entropy.name, grads },
    dropoutSeed: f.lora?.dropoutSeed != null,
  };
}
