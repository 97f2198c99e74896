// Qwen2-VL as a trainable policy: full fine-tuning (every weight trained, the initial weights kept as
// the reference) or LoRA (the base frozen and held once; only the adapter's A and B are trained and
// given optimizer state; the reference is the base itself, i.e. the adapter switched off).
//
// Every graph comes from the one definition: rollouts decode with the serving graphs (weights and
// adapter fed as inputs, so each step's update is used without rebuilding), scoring and gradients
// with the training graph.
import type { Qwen2VLConfig } from '../engine/architectures/qwen2-vl/config.ts';
import { buildDecoderGraph, buildEmbedTokensGraph, buildVisionEncoderGraph, type ServingLora } from '../engine/architectures/qwen2-vl/graphs.ts';
import { qwen2VLInputShapes, toServingLayout, type Qwen2VLWeights } from '../engine/architectures/qwen2-vl/params.ts';
import { qwen2VLTrainingBatch, type Qwen2VLTrainingBatch } from '../engine/architectures/qwen2-vl/training-batch.ts';
import { Qwen2VLTrainingSession } from '../engine/architectures/qwen2-vl/training-session.ts';
import { qwen2VLLoraTargets, type Qwen2VLTrainable } from '../engine/architectures/qwen2-vl/training.ts';
import type { Graph } from '../engine/graph/builder.ts';
import { serializeGraph } from '../engine/graph/serialize.ts';
import type { LoraConfig } from '../engine/lora/config.ts';
import { adapterInputShapes, dropoutStepSeed } from '../engine/lora/graph.ts';
import { initLoraWeights } from '../engine/lora/init.ts';
import { f32, openSession, type Feed } from '../engine/ort/session.ts';
import { generateQwen2Vl, type Qwen2VlServingSessions } from '../runtime/qwen2-vl/generate.ts';
import type { PerToken, PolicySequence, Rollout, RolloutRow, TrainablePolicy } from './policy.ts';

/** How a fine-tune trains: every weight, or a LoRA adapter (PEFT's semantics and names). */
export type TrainMethod = { type: 'full' } | { type: 'lora'; lora: LoraConfig };

export interface Qwen2VLPolicyOptions {
  config: Qwen2VLConfig;
  /**
   * The initial weights in HF layout, never modified: the reference for full fine-tuning; for LoRA
   * the frozen base, converted once to serving layout (shared by the training and rollout graphs,
   * so no graph transposes a weight per run) and, with `releaseBase`, emptied as it is converted.
   */
  base: Qwen2VLWeights;
  releaseBase?: boolean;
  method: TrainMethod;
  /** Seeds the adapter's initialisation and its dropout. */
  seed: number;
  stopIds: readonly number[];
  padId: number;
  /** Resume: the trainable tensors from a checkpoint instead of a fresh start. */
  trainable?: Map<string, Float32Array>;
  threads?: number;
}

export class Qwen2VLPolicy implements TrainablePolicy<Qwen2VLTrainingBatch> {
  readonly modelType = 'qwen2_vl';

  private constructor(
    readonly config: Qwen2VLConfig,
    readonly base: Qwen2VLWeights,
    readonly trainable: Map<string, Float32Array>,
    readonly method: Qwen2VLTrainable,
    readonly stopIds: readonly number[],
    readonly padId: number,
    private readonly seed: number,
    private readonly trainer: Qwen2VLTrainingSession,
    private readonly scorer: Qwen2VLTrainingSession,
    private readonly serving: Qwen2VlServingSessions,
    private readonly servingInputs: { vision: string[]; embed: string[]; decoder: string[] },
    private readonly shapes: Map<string, number[]>,
  ) {}

  static async create(o: Qwen2VLPolicyOptions): Promise<Qwen2VLPolicy> {
    const c = o.config;
    const layout = o.method.type === 'lora' ? 'serving' : 'hf';
    const shapes = qwen2VLInputShapes(c, layout);
    const base = layout === 'serving' ? toServingLayout(c, o.base, o.releaseBase) : o.base;
    let method: Qwen2VLTrainable;
    let trainable: Map<string, Float32Array>;
    let lora: ServingLora | undefined;
    if (o.method.type === 'lora') {
      const targets = qwen2VLLoraTargets(c, o.method.lora);
      method = { kind: 'lora', config: o.method.lora, targets };
      for (const t of targets) {
        const s = adapterInputShapes(t, o.method.lora.r);
        shapes.set(t.aName, s.a);
        shapes.set(t.bName, s.b);
      }
      trainable = o.trainable ?? initLoraWeights(targets, o.method.lora, o.seed);
      lora = { config: o.method.lora, targets, mode: { kind: 'inputs' } };
    } else {
      method = { kind: 'full' };
      trainable = o.trainable ?? new Map([...o.base].map(([k, v]) => [k, v.slice()]));
    }
    for (const [name] of shapes) {
      if (!trainable.has(name) && !base.has(name)) throw new Error(`weights: ${name} is missing`);
    }
    const threads = o.threads;
    const trainer = await Qwen2VLTrainingSession.create(c, { trainable: method, withGrads: true, intraOpThreads: threads, layout });
    const scorer = await Qwen2VLTrainingSession.create(c, { trainable: method, withGrads: false, intraOpThreads: threads, layout });
    const source = { kind: 'inputs', layout } as const;
    const graphs = {
      vision: buildVisionEncoderGraph(c, source, { lora }),
      embed: buildEmbedTokensGraph(c, source),
      decoder: buildDecoderGraph(c, source, { logits: 'last', present: 'new', lora }),
    };
    const inputsOf = (g: Graph) => g.inputs.map((v) => v.name).filter((n) => shapes.has(n));
    const open = async (g: Graph) => (await openSession(serializeGraph(g), { intraOpThreads: threads })).session;
    const serving: Qwen2VlServingSessions = {
      config: c,
      vision: await open(graphs.vision),
      embed: await open(graphs.embed),
      decoder: await open(graphs.decoder),
    };
    return new Qwen2VLPolicy(
      c,
      base,
      trainable,
      method,
      o.stopIds,
      o.padId,
      o.seed,
      trainer,
      scorer,
      serving,
      { vision: inputsOf(graphs.vision), embed: inputsOf(graphs.embed), decoder: inputsOf(graphs.decoder) },
      shapes,
    );
  }

  decays(name: string): boolean {
    // LoRA adapters decay (PEFT + AdamW's default); full fine-tuning decays matrices, not norms, biases or embeddings' rows.
    if (this.method.kind === 'lora') return true;
    return (this.shapes.get(name)?.length ?? 0) >= 2 && !name.includes('embed_tokens');
  }

  /** The shape a trainable or base tensor has (HF layout; an adapter's A/B as fed). */
  shapeOf(name: string): number[] {
    const s = this.shapes.get(name);
    if (!s) throw new Error(`no tensor named ${name}`);
    return s;
  }

  private weightFeed(names: readonly string[]): Feed {
    const feed: Feed = {};
    for (const n of names) feed[n] = f32(this.trainable.get(n) ?? this.base.get(n)!, this.shapes.get(n)!);
    return feed;
  }

  async rollout(rows: readonly RolloutRow[]): Promise<Rollout[]> {
    const s: Qwen2VlServingSessions = {
      ...this.serving,
      visionFeed: this.weightFeed(this.servingInputs.vision),
      embedFeed: this.weightFeed(this.servingInputs.embed),
      decoderFeed: this.weightFeed(this.servingInputs.decoder),
    };
    const out = await generateQwen2Vl(
      s,
      rows.map((r) => ({
        promptIds: r.promptIds,
        pixelValues: r.images.pixelValues,
        grids: r.images.grids.map((g) => [g[0], g[1], g[2]] as const),
        sampling: { temperature: r.temperature, topP: r.topP },
        maxTokens: r.maxTokens,
        seed: r.seed,
      })),
      { stopIds: this.stopIds, padId: this.padId },
    );
    return out.rows;
  }

  batch(sequences: readonly PolicySequence[]): Qwen2VLTrainingBatch {
    return qwen2VLTrainingBatch(
      this.config,
      sequences.map((s) => ({
        ids: [...s.promptIds, ...s.completion],
        promptLength: s.promptIds.length,
        pixelValues: s.images.pixelValues,
        grids: s.images.grids,
      })),
      this.padId,
    );
  }

  async score(batch: Qwen2VLTrainingBatch, policy: 'current' | 'reference'): Promise<PerToken> {
    if (policy === 'current') return this.scorer.forward(this.base, this.trainable, batch);
    if (this.method.kind === 'full') return this.scorer.forward(this.base, this.base, batch);
    // The base alone: every adapter's B at zero makes its delta zero.
    const off = new Map([...this.trainable].map(([k, v]) => [k, k.endsWith('.lora_B.weight') ? new Float32Array(v.length) : v]));
    return this.scorer.forward(this.base, off, batch);
  }

  async gradients(batch: Qwen2VLTrainingBatch, gradLogprobs: Float32Array, step: number) {
    return this.trainer.backward(this.base, this.trainable, batch, gradLogprobs, dropoutStepSeed(this.seed, step));
  }

  async release(): Promise<void> {
    await Promise.all([
      this.trainer.release(),
      this.scorer.release(),
      this.serving.vision.release(),
      this.serving.embed.release(),
      this.serving.decoder.release(),
    ]);
  }
}
