// The contract between the server and a loaded model. The server (batcher, registry, services)
// programs only against these types; src/runtime/model-runtime.ts implements them on ONNX Runtime
// and tests implement them with a fake.

export interface GenerateParams {
  temperature: number;
  topP: number;
  maxTokens: number;
  seed?: number;
}

export interface InferenceRequest {
  /** The image as the runtime's prepareImage made it: row-major [numPatches * patchDim]. */
  patches: Float32Array;
  /** [t, h, w] in patches, for architectures whose image size varies (Qwen2-VL). */
  gridThw?: readonly [number, number, number];
  question: string;
  /**
   * The client's system instructions, for architectures whose chat template has a system turn
   * (e.g. the prompt GRPO-tuned medical models expect for their <think>/<answer> replies).
   */
  systemPrompt?: string;
  params: GenerateParams;
}

export interface InferenceResult {
  /** Everything the decoder produced, e.g. `<think>…</think><answer>…</answer>`. */
  text: string;
  answer: string;
  reasoning: string;
  promptTokens: number;
  completionTokens: number;
  finishReason: 'stop' | 'length';
  timings: { visionMs: number; decodeMs: number };
}

export interface ImageConfig {
  imageSize: number;
  patchSize: number;
  mean: number[];
  std: number[];
}

/** An uploaded image turned into the vision encoder's input by the model's own processor. */
export interface PreparedImage {
  patches: Float32Array;
  gridThw?: readonly [number, number, number];
}

/** Limits on an upload, checked before anything is decoded. */
export interface ImageLimits {
  maxInputPixels: number;
  maxBytes: number;
}

export interface ModelRuntime {
  /** Package directory name, e.g. 'clinvqa-grpo'; the model id clients see. */
  readonly id: string;
  /** The package's manifest.json (model card). */
  readonly manifest: Record<string, unknown>;
  /** Largest batch generateBatch accepts; the batcher never exceeds it. */
  readonly maxBatch: number;
  /**
   * The execution provider the sessions actually run on ('cuda', 'webgpu', 'cpu'), so the server
   * can log a fallback. Optional so a runtime that cannot tell still satisfies the contract.
   */
  readonly executionProvider?: string;
  /**
   * Upload bytes → the vision encoder's input, with this model's processor (size, normalisation,
   * patch order). Throws ImageInputError for a bad upload.
   */
  prepareImage(bytes: Uint8Array, limits: ImageLimits): Promise<PreparedImage>;
  /** One batched vision pass + batched decode; results in the order of `reqs`. */
  generateBatch(reqs: InferenceRequest[]): Promise<InferenceResult[]>;
  /** Frees sessions; called only once no request is using this runtime. */
  dispose(): Promise<void>;
}

export type RuntimeLoader = (packageDir: string, opts: { executionProviders: string[]; intraOpThreads?: number }) => Promise<ModelRuntime>;
