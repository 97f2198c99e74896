// What a trainer needs of a model architecture, whatever its family: the tensors the optimizer
// updates, prompts built the way the architecture's processor and chat template build them, sampled
// completions from the current policy, and per-token log-probs (current or reference policy) and
// their gradient for a batch of sequences. SFT and GRPO loops written against this run on any
// architecture that implements it (qwen2-vl/policy.ts).

export interface PolicyPrompt {
  /** Prompt token ids, image tokens expanded. */
  promptIds: number[];
  /** The architecture's prepared images for this prompt (opaque to the trainer). */
  images: PolicyImages;
}

/** Prepared image inputs: pixel values and per-image grids for Qwen2-VL. */
export interface PolicyImages {
  pixelValues: Float32Array;
  grids: readonly (readonly [number, number, number])[];
}

export interface RolloutRow extends PolicyPrompt {
  temperature: number;
  topP: number;
  maxTokens: number;
  seed: number;
}

export interface Rollout {
  tokens: number[];
  finishReason: 'stop' | 'length';
}

export interface PolicySequence extends PolicyPrompt {
  /** The completion scored after the prompt. */
  completion: readonly number[];
}

/** A batch laid out for scoring: per-token arrays are [B, S] (rows, positions), `lossMask` 1 where a completion token is predicted. */
export interface PolicyBatch {
  B: number;
  S: number;
  lossMask: Float32Array;
}

export interface PerToken {
  logprobs: Float32Array;
  entropy: Float32Array;
}

export interface TrainablePolicy<B extends PolicyBatch = PolicyBatch> {
  /** HF model_type of the architecture ("qwen2_vl"). */
  readonly modelType: string;
  /** What the optimizer updates (all weights, or a LoRA adapter's A and B), updated in place. */
  readonly trainable: Map<string, Float32Array>;
  /** Names (of `trainable`) that take weight decay. */
  decays(name: string): boolean;
  /** Stop tokens and the padding id of generation. */
  readonly stopIds: readonly number[];
  readonly padId: number;
  rollout(rows: readonly RolloutRow[]): Promise<Rollout[]>;
  batch(sequences: readonly PolicySequence[]): B;
  /** Log-probs under the current weights, or the reference (initial) model's. */
  score(batch: B, policy: 'current' | 'reference'): Promise<PerToken>;
  /** Gradient of Σ gradLogprobs · logprobs for every trainable tensor; `step` seeds in-graph dropout. */
  gradients(batch: B, gradLogprobs: Float32Array, step: number): Promise<{ grads: Map<string, Float32Array> } & PerToken>;
  release(): Promise<void>;
}
