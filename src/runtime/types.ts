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
  /** Preprocessed image, row-major [numPatches * patchDim], as src/preprocess/image.ts returns it. */
  patches: Float32Array;
  question: string;
  params: GenerateParams;
  /**
   * Offline evaluation only: read a question longer than the context by its last tokens, as the
   * trainers build their prompts, instead of refusing it. Serving never sets it.
   */
  readQuestionEnd?: boolean;
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

export interface ModelRuntime {
  /** Package directory name, e.g. 'clinvqa-grpo'; the model id clients see. */
  readonly id: string;
  /** The package's manifest.json (model card). */
  readonly manifest: Record<string, unknown>;
  readonly imageConfig: ImageConfig;
  /** Largest batch generateBatch accepts; the batcher never exceeds it. */
  readonly maxBatch: number;
  /**
   * The execution provider the sessions actually run on ('cuda', 'webgpu', 'cpu'), so the server
   * can log a fallback. Optional so a runtime that cannot tell still satisfies the contract.
   */
  readonly executionProvider?: string;
  /**
   * The prompt tokens this question takes with this model; throws PromptTooLongError (from
   * prompt.ts) when it does not fit the model's context. Every model knows its own context, so the
   * server asks before queueing rather than let a request fail its batch or be cut.
   */
  checkPrompt(question: string): number;
  /** One batched vision pass + batched decode; results in the order of `reqs`. */
  generateBatch(reqs: InferenceRequest[]): Promise<InferenceResult[]>;
  /** Frees sessions; called only once no request is using this runtime. */
  dispose(): Promise<void>;
}

export type RuntimeLoader = (packageDir: string, opts: { executionProviders: string[]; intraOpThreads?: number }) => Promise<ModelRuntime>;
