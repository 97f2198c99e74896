// Runs the training graph of a model config on ONNX Runtime: weights go in as inputs on every call
// (so the optimizer, which lives in TS, can update them in place without rebuilding anything), and
// per-token log-probs, entropy and — given an upstream gradient — a gradient for every weight come
// out. Losses (SFT cross-entropy, GRPO surrogate, KL) are computed in TS from the log-probs.
import type * as ortTypes from 'onnxruntime-node';
import { serializeGraph } from '../graph/serialize.ts';
import { numPatches, patchDim, type ModelConfig } from '../model/config.ts';
import { buildTrainingGraph } from '../model/vlm.ts';
import type { ParamSpec, Weights } from '../model/params.ts';
import type { TrainingBatch } from '../model/batch-inputs.ts';
import { f32, i64, openSession, type Feed } from '../ort/session.ts';

export interface TrainingSessionOptions {
  /** false = a forward-only session (reference / old-policy log-probs, evaluation). */
  withGrads: boolean;
  intraOpThreads?: number;
  executionProviders?: string[];
}

export interface ForwardResult {
  /** [B, T] log-prob of targets[b, t] given everything before it. */
  logprobs: Float32Array;
  /** [B, T] entropy of the next-token distribution. */
  entropy: Float32Array;
}

export interface BackwardResult extends ForwardResult {
  /** Gradient of Σ grad_logprobs · logprobs with respect to every weight. */
  grads: Map<string, Float32Array>;
}

export class TrainingSession {
  private constructor(
    readonly config: ModelConfig,
    readonly params: ParamSpec[],
    private readonly session: ortTypes.InferenceSession,
    private readonly gradOutputs: Map<string, string>,
    readonly withGrads: boolean,
  ) {}

  static async create(config: ModelConfig, opts: TrainingSessionOptions): Promise<TrainingSession> {
    const tg = buildTrainingGraph(config, { withGrads: opts.withGrads });
    const { session } = await openSession(serializeGraph(tg.graph), {
      executionProviders: opts.executionProviders,
      intraOpThreads: opts.intraOpThreads,
    });
    return new TrainingSession(config, tg.params, session, tg.outputs.grads, opts.withGrads);
  }

  private feed(weights: Weights, patches: Float32Array, batch: TrainingBatch): Feed {
    const np = numPatches(this.config);
    const S = np + batch.text;
    const B = batch.batch;
    if (patches.length !== B * np * patchDim(this.config)) {
      throw new Error(`patches hold ${patches.length} values, expected ${B}×${np}×${patchDim(this.config)}`);
    }
    const feed: Feed = {
      patches: f32(patches, [B, np, patchDim(this.config)]),
      input_ids: i64(batch.inputIds, [B, batch.text]),
      targets: i64(batch.targets, [B, batch.text]),
      position_ids: i64(batch.positionIds, [B, S]),
      attention_bias: f32(batch.attentionBias, [B, 1, S, S]),
    };
    for (const p of this.params) {
      const w = weights.get(p.name);
      if (!w) throw new Error(`weights: ${p.name} is missing`);
      feed[p.name] = f32(w, p.shape);
    }
    return feed;
  }

  /** Log-probs and entropy only (no gradient work). */
  async forward(weights: Weights, patches: Float32Array, batch: TrainingBatch): Promise<ForwardResult> {
    const feed = this.feed(weights, patches, batch);
    if (this.withGrads) feed.grad_logprobs = f32(new Float32Array(batch.batch * batch.text), [batch.batch, batch.text]);
    const out = await this.session.run(feed, ['logprobs', 'entropy']);
    return { logprobs: out.logprobs.data as Float32Array, entropy: out.entropy.data as Float32Array };
  }

  /** Forward plus the vector-Jacobian product of `gradLogprobs` [B, T] through to every weight. */
  async backward(weights: Weights, patches: Float32Array, batch: TrainingBatch, gradLogprobs: Float32Array): Promise<BackwardResult> {
    if (!this.withGrads) throw new Error('this TrainingSession was created without gradients');
    if (gradLogprobs.length !== batch.batch * batch.text) throw new Error('gradLogprobs must be [B, T]');
    const feed = this.feed(weights, patches, batch);
    feed.grad_logprobs = f32(gradLogprobs, [batch.batch, batch.text]);
    const out = await this.session.run(feed);
    const grads = new Map<string, Float32Array>();
    for (const [param, output] of this.gradOutputs) grads.set(param, out[output].data as Float32Array);
    return { logprobs: out.logprobs.data as Float32Array, entropy: out.entropy.data as Float32Array, grads };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
