// Runs Qwen2-VL's training graph on ONNX Runtime. The frozen base and the trainable tensors go in as
// inputs on every call (the base from the one copy in memory; the optimizer updates the trainable
// ones in place), per-token log-probs and entropy come out, and with gradients the VJP of an upstream
// gradient on the log-probs for every trainable tensor.
import type * as ortTypes from 'onnxruntime-node';
import { serializeGraph } from '../../graph/serialize.ts';
import { f32, i64, openSession, ort, type Feed } from '../../ort/session.ts';
import { adapterInputShapes, DROPOUT_SEED_INPUT } from '../../lora/graph.ts';
import type { Qwen2VLConfig } from './config.ts';
import { qwen2VLInputShapes, type Qwen2VLWeights } from './params.ts';
import type { Qwen2VLTrainingBatch } from './training-batch.ts';
import { buildQwen2VLTrainingGraph, type Qwen2VLTrainable } from './training.ts';

export interface Qwen2VLSessionOptions {
  trainable: Qwen2VLTrainable;
  withGrads: boolean;
  intraOpThreads?: number;
  /** Whether the batches carry images (default true). */
  images?: boolean;
  /** Layout of the fed base weights (LoRA may feed a serving-layout base shared with rollouts). Default hf. */
  layout?: 'hf' | 'serving';
}

export interface Qwen2VLForwardResult {
  logprobs: Float32Array;
  entropy: Float32Array;
}

export interface Qwen2VLBackwardResult extends Qwen2VLForwardResult {
  grads: Map<string, Float32Array>;
}

export class Qwen2VLTrainingSession {
  private constructor(
    readonly config: Qwen2VLConfig,
    readonly trainable: Qwen2VLTrainable,
    private readonly session: ortTypes.InferenceSession,
    private readonly inputNames: Set<string>,
    private readonly shapes: Map<string, number[]>,
    private readonly gradOutputs: Map<string, string>,
    readonly withGrads: boolean,
  ) {}

  static async create(c: Qwen2VLConfig, opts: Qwen2VLSessionOptions): Promise<Qwen2VLTrainingSession> {
    const layout = opts.layout ?? 'hf';
    const tg = buildQwen2VLTrainingGraph(c, { trainable: opts.trainable, withGrads: opts.withGrads, images: opts.images, source: { kind: 'inputs', layout } });
    const shapes = qwen2VLInputShapes(c, layout);
    if (opts.trainable.kind === 'lora') {
      for (const t of opts.trainable.targets) {
        const s = adapterInputShapes(t, opts.trainable.config.r);
        shapes.set(t.aName, s.a);
        shapes.set(t.bName, s.b);
      }
    }
    const { session } = await openSession(serializeGraph(tg.graph), { intraOpThreads: opts.intraOpThreads });
    const inputs = new Set(tg.graph.inputs.map((v) => v.name));
    return new Qwen2VLTrainingSession(c, opts.trainable, session, inputs, shapes, tg.outputs.grads, opts.withGrads);
  }

  private feed(base: Qwen2VLWeights, trainable: Qwen2VLWeights, b: Qwen2VLTrainingBatch, dropoutSeed: bigint): Feed {
    const feed: Feed = {
      input_ids: i64(b.inputIds, [b.B, b.S]),
      targets: i64(b.targets, [b.B, b.S]),
      attention_mask: i64(b.attentionMask, [b.B, b.S]),
      position_ids: i64(b.positionIds, [3, b.B, b.S]),
    };
    if (this.inputNames.has('pixel_values')) {
      feed.pixel_values = f32(b.pixelValues, [b.pixelValues.length / this.config.vision.patchDim, this.config.vision.patchDim]);
      feed.grid_thw = i64(b.gridThw, [b.numImages, 3]);
      feed.image_mask = i64(b.imageMask, [b.B, b.S]);
    }
    if (this.inputNames.has(DROPOUT_SEED_INPUT)) feed[DROPOUT_SEED_INPUT] = new ort.Tensor('int64', BigInt64Array.of(dropoutSeed), []);
    for (const name of this.inputNames) {
      const shape = this.shapes.get(name);
      if (!shape) continue;
      const w = trainable.get(name) ?? base.get(name);
      if (!w) throw new Error(`weights: ${name} is missing`);
      feed[name] = f32(w, shape);
    }
    return feed;
  }

  /** Log-probs and entropy only. */
  async forward(base: Qwen2VLWeights, trainable: Qwen2VLWeights, b: Qwen2VLTrainingBatch, dropoutSeed = 0n): Promise<Qwen2VLForwardResult> {
    const feed = this.feed(base, trainable, b, dropoutSeed);
    if (this.withGrads) feed.grad_logprobs = f32(new Float32Array(b.B * b.S), [b.B, b.S]);
    const out = await this.session.run(feed, ['logprobs', 'entropy']);
    return { logprobs: out.logprobs.data as Float32Array, entropy: out.entropy.data as Float32Array };
  }

  /** Forward plus the VJP of `gradLogprobs` [B, S] for every trainable tensor. */
  async backward(
    base: Qwen2VLWeights,
    trainable: Qwen2VLWeights,
    b: Qwen2VLTrainingBatch,
    gradLogprobs: Float32Array,
    dropoutSeed = 0n,
  ): Promise<Qwen2VLBackwardResult> {
    if (!this.withGrads) throw new Error('this session was created without gradients');
    if (gradLogprobs.length !== b.B * b.S) throw new Error(`gradLogprobs must be [${b.B}, ${b.S}]`);
    const feed = this.feed(base, trainable, b, dropoutSeed);
    feed.grad_logprobs = f32(gradLogprobs, [b.B, b.S]);
    const out = await this.session.run(feed);
    const grads = new Map<string, Float32Array>();
    for (const [name, output] of this.gradOutputs) grads.set(name, out[output]!.data as Float32Array);
    return { logprobs: out.logprobs!.data as Float32Array, entropy: out.entropy!.data as Float32Array, grads };
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
