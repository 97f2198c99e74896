// The three graphs made from the one model definition:
//   training    — weights as inputs; per-token log-probs (+ entropy) and, optionally, the
//                 gradient of every weight given an upstream gradient on the log-probs;
//   vision      — serving: patches -> image embeddings (weights baked in);
//   decoder     — serving: ids (+ image embeddings) + KV cache -> last-position logits + the keys
//                 and values of the positions just fed (the caller appends them to its cache).
import { Graph, type Value } from '../graph/builder.ts';
import * as o from '../graph/ops.ts';
import { backward } from '../autodiff/backward.ts';
import type { ModelConfig } from './config.ts';
import { numPatches, patchDim, validateConfig } from './config.ts';
import { decoderStack, lmHead, tokenEmbeddings } from './decoder.ts';
import type { KeyValue } from './layers.ts';
import { ParamSource, type ParamSpec, type Weights } from './params.ts';
import { visionEncoder } from './vision.ts';
import { newKeyValueNames, pastNames } from './serving-io.ts';

export interface TrainingGraph {
  graph: Graph;
  params: ParamSpec[];
  /** Output names: log-probs, entropy and `grad.<param>` for each parameter (when withGrads). */
  outputs: { logprobs: string; entropy: string; grads: Map<string, string> };
}

export interface ForwardValues {
  logprobs: Value; // [B, T]
  entropy: Value; // [B, T]
  params: Value[];
  specs: ParamSpec[];
}

/**
 * The training-side forward pass on graph `g`, parameters as graph inputs. Inputs: every
 * parameter; `patches` [B, Np, P]; `input_ids` [B, T]; `targets` [B, T] (the token whose log-prob
 * is wanted at each text position, i.e. input_ids shifted left); `position_ids` [B, Np+T];
 * `attention_bias` [B, 1, Np+T, Np+T].
 */
export function buildForwardOn(g: Graph, c: ModelConfig): ForwardValues {
  validateConfig(c);
  const ps = new ParamSource(g, { kind: 'inputs' });
  const np = numPatches(c);
  const patches = g.input('patches', g.floatType, ['batch', np, patchDim(c)]);
  const ids = g.input('input_ids', 'int64', ['batch', 'text']);
  const targets = g.input('targets', 'int64', ['batch', 'text']);
  const positions = g.input('position_ids', 'int64', ['batch', 'seq']);
  const bias = g.input('attention_bias', g.floatType, ['batch', 1, 'seq', 'seq']);

  // 1. encode the image; 2. embed the text and put the image first; 3. run the decoder
  const image = visionEncoder(ps, c, patches);
  const embeds = o.concat([image, o.gather(tokenEmbeddings(ps, c), ids, 0)], 1);
  const { hidden } = decoderStack(ps, c, { embeds, positionIds: positions, bias, past: null });
  // 4. score only the text positions
  const textHidden = o.slice(hidden, [np], [Infinity], [1]);
  const logp = o.logSoftmax(lmHead(ps, c, textHidden), -1); // [B, T, V]
  const logprobs = o.squeeze(o.gatherElements(logp, o.unsqueeze(targets, [-1]), 2), [2]);
  const entropy = o.neg(o.reduceSum(o.mul(o.exp(logp), logp), [-1], false));
  return { logprobs, entropy, params: ps.specs.map((sp) => ps.values.get(sp.name)!), specs: ps.specs };
}

/** The forward graph plus, with `withGrads`, an input `grad_logprobs` [B, T] and `grad.<param>` outputs. */
export function buildTrainingGraph(c: ModelConfig, opts: { withGrads: boolean; floatType?: 'float32' | 'float64' }): TrainingGraph {
  const g = new Graph(opts.withGrads ? 'clinvqa_train' : 'clinvqa_logprobs', opts.floatType ?? 'float32');
  const f = buildForwardOn(g, c);
  const logprobs = g.output(f.logprobs, 'logprobs');
  const entropy = g.output(f.entropy, 'entropy');
  const grads = new Map<string, string>();
  if (opts.withGrads) {
    const upstream = g.input('grad_logprobs', g.floatType, ['batch', 'text']);
    const dW = backward(g, [{ value: f.logprobs, grad: upstream }], f.params);
    for (const p of f.params) {
      const d = dW.get(p);
      if (!d) throw new Error(`no gradient reaches ${p.name}`);
      grads.set(p.name, g.output(d, `grad.${p.name}`).name);
    }
  }
  return { graph: g, params: f.specs, outputs: { logprobs: logprobs.name, entropy: entropy.name, grads } };
}

/** The parameter specs of a config, in a stable order (builds the graph without grads). */
export function parameterSpecs(c: ModelConfig): ParamSpec[] {
  return buildTrainingGraph(c, { withGrads: false }).params;
}

// Serving graphs bake the weights in as initializers. Without `weights` they take them as inputs
// instead: GRPO rollouts decode with the policy being trained, whose weights change every step.
function servingParams(g: Graph, weights: Weights | undefined): ParamSource {
  return new ParamSource(g, weights ? { kind: 'initializers', weights } : { kind: 'inputs' });
}

/** Serving: patches [B, Np, P] -> image_embeds [B, Np, D]. */
export function buildVisionGraph(c: ModelConfig, weights?: Weights): Graph {
  validateConfig(c);
  const g = new Graph('clinvqa_vision_encoder');
  const ps = servingParams(g, weights);
  const patches = g.input('patches', 'float32', ['batch', numPatches(c), patchDim(c)]);
  g.output(visionEncoder(ps, c, patches), 'image_embeds');
  return g;
}

/**
 * Serving: one decoder pass. Inputs `image_embeds` [B, I, D] (I = Np on the first pass, 0 after),
 * `input_ids` [B, T], `position_ids` [B, S] (S = I+T, the positions fed now), `attention_bias`
 * [B, 1, S, P+S] (keys: the P cached ones, then these S), and per layer
 * `past_key_values.{l}.key|value` [B, H, P, Dh] (P = 0 on the first pass; any P — the cache may
 * be a preallocated buffer whose unwritten slots the bias masks). Outputs `logits` [B, V] at the
 * last position and `new_key_values.{l}.key|value` [B, H, S, Dh]: only the positions fed now, so a
 * step's outputs stay small however long the cache grows; the caller writes them into its cache.
 */
export function buildDecoderGraph(c: ModelConfig, weights?: Weights): Graph {
  validateConfig(c);
  const g = new Graph('clinvqa_decoder');
  const ps = servingParams(g, weights);
  const t = c.text;
  const headDim = t.dim / t.heads;
  const image = g.input('image_embeds', 'float32', ['batch', 'image', t.dim]);
  const ids = g.input('input_ids', 'int64', ['batch', 'text']);
  const positions = g.input('position_ids', 'int64', ['batch', 'step']);
  const bias = g.input('attention_bias', 'float32', ['batch', 1, 'step', 'total']);
  const past: KeyValue[] = [];
  for (let l = 0; l < t.layers; l++) {
    const n = pastNames(l);
    past.push({
      key: g.input(n.key, 'float32', ['batch', t.heads, 'past', headDim]),
      value: g.input(n.value, 'float32', ['batch', t.heads, 'past', headDim]),
    });
  }
  const embeds = o.concat([image, o.gather(tokenEmbeddings(ps, c), ids, 0)], 1);
  const { hidden, presents } = decoderStack(ps, c, { embeds, positionIds: positions, bias, past });
  const last = o.gather(hidden, g.constInts([-1], true), 1); // [B, D]
  g.output(lmHead(ps, c, last), 'logits');
  presents.forEach((p, l) => {
    const n = newKeyValueNames(l);
    g.output(p.key, n.key);
    g.output(p.value, n.value);
  });
  return g;
}

export type { Value };
