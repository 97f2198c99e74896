// A model package loaded for serving: hashes verified, tokenizer and the two ONNX sessions opened
// (execution providers tried in order, CPU last), then batched generation behind the ModelRuntime
// contract the server programs against.
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { VqaTokenizer } from '../data/tokenizer.ts';
import { parseCompletion } from '../data/grounded-trace.ts';
import { numPatches, validateConfig, type ModelConfig } from '../engine/model/config.ts';
import { openSession } from '../engine/ort/session.ts';
import { exportServingOnnx } from '../engine/export/onnx-export.ts';
import type { Weights } from '../engine/model/params.ts';
import { verifyModelPackage } from '../registry/model-package.ts';
import { generate, type ServingSessions } from './generate.ts';
import { promptIds, wholePromptIds } from './prompt.ts';
import { preprocessImage } from '../preprocess/image.ts';
import type { ImageConfig, ImageLimits, InferenceRequest, InferenceResult, ModelRuntime, PreparedImage, RuntimeLoader } from './types.ts';

/** Longest answer a request may ask for; the rest of the position table is left to the question. */
export const MAX_NEW_TOKENS = 64;
export const DEFAULT_MAX_BATCH = 16;

/** Question tokens a model of this config reads: its positions less the image prefix and the longest answer. */
export function maxPromptTokensFor(config: ModelConfig): number {
  return config.text.maxPositions - numPatches(config) - MAX_NEW_TOKENS;
}

export interface RuntimeOptions {
  executionProviders: string[];
  maxBatch?: number;
  /** ORT intra-op threads (0 = all cores). The fine-tune worker asks for fewer. */
  intraOpThreads?: number;
}

export class OnnxModelRuntime implements ModelRuntime {
  readonly imageConfig: ImageConfig;
  /** The decoder's positions less the image prefix and the longest answer. */
  readonly maxPromptTokens: number;

  constructor(
    readonly id: string,
    readonly manifest: Record<string, unknown>,
    readonly config: ModelConfig,
    readonly tokenizer: VqaTokenizer,
    private readonly sessions: ServingSessions,
    readonly executionProvider: string,
    readonly maxBatch: number,
  ) {
    this.imageConfig = { imageSize: config.imageSize, patchSize: config.patchSize, mean: config.imageMean, std: config.imageStd };
    this.maxPromptTokens = maxPromptTokensFor(config);
  }

  get decodeTargetSize(): number {
    return this.imageConfig.imageSize;
  }

  checkPrompt(question: string): number {
    return wholePromptIds(this.tokenizer, question, this.maxPromptTokens, this.id).length;
  }

  async prepareImage(bytes: Uint8Array, limits: ImageLimits): Promise<PreparedImage> {
    const { imageSize, patchSize, mean, std } = this.imageConfig;
    const image = await preprocessImage(bytes, { imageSize, patchSize, channels: 3, mean, std, ...limits });
    return { patches: image.patches };
  }

  async generateBatch(reqs: InferenceRequest[]): Promise<InferenceResult[]> {
    if (reqs.length === 0) return [];
    if (reqs.length > this.maxBatch) throw new Error(`batch of ${reqs.length} exceeds maxBatch ${this.maxBatch}`);
    const tk = this.tokenizer;
    // Serving checks each prompt first (checkPrompt); a prompt that does not fit fails the batch
    // here rather than be cut, unless an offline evaluation asked to read it as training does.
    const rows = reqs.map((r) => ({
      patches: r.patches,
      promptIds: r.readQuestionEnd === true ? promptIds(tk, r.question, this.maxPromptTokens) : wholePromptIds(tk, r.question, this.maxPromptTokens, this.id),
      sampling: { temperature: r.params.temperature, topP: r.params.topP },
      maxTokens: Math.max(1, Math.min(MAX_NEW_TOKENS, Math.floor(r.params.maxTokens))),
      seed: r.params.seed,
    }));
    const out = await generate(this.sessions, rows, { stopIds: [tk.answerEndId, tk.eosId], padId: tk.padId });
    return out.rows.map((g, b) => {
      const text = tk.decode(g.tokens.filter((t) => t !== tk.eosId));
      const parsed = parseCompletion(text);
      return {
        text,
        answer: parsed.answer,
        reasoning: parsed.reasoning,
        promptTokens: rows[b].promptIds.length,
        completionTokens: g.tokens.length,
        finishReason: g.finishReason,
        timings: { visionMs: out.visionMs, decodeMs: out.decodeMs },
      };
    });
  }

  async dispose(): Promise<void> {
    await Promise.all([this.sessions.vision.release(), this.sessions.decoder.release()]);
  }
}

export async function loadRuntime(packageDir: string, opts: RuntimeOptions): Promise<OnnxModelRuntime> {
  // A package whose files do not match their manifest hashes is refused here, before any use.
  const manifest = await verifyModelPackage(packageDir);
  const config = JSON.parse(await readFile(join(packageDir, 'config.json'), 'utf8')) as ModelConfig;
  validateConfig(config);
  const tokenizer = await VqaTokenizer.load(join(packageDir, 'tokenizer.json'));
  if (tokenizer.vocabSize > config.text.vocabSize) {
    throw new Error(`${packageDir}: tokenizer has ${tokenizer.vocabSize} tokens, the model only ${config.text.vocabSize}`);
  }
  const sessionOpts = { executionProviders: opts.executionProviders, intraOpThreads: opts.intraOpThreads };
  const vision = await openSession(join(packageDir, 'onnx/vision_encoder.onnx'), sessionOpts);
  const decoder = await openSession(join(packageDir, 'onnx/decoder.onnx'), sessionOpts);
  return new OnnxModelRuntime(
    basename(packageDir),
    manifest as unknown as Record<string, unknown>,
    config,
    tokenizer,
    { config, vision: vision.session, decoder: decoder.session },
    decoder.provider,
    opts.maxBatch ?? DEFAULT_MAX_BATCH,
  );
}

/**
 * A runtime over weights still in memory (training-time evaluation): the same serving graphs a
 * package would hold, built and opened without touching the disk.
 */
export async function runtimeFromWeights(
  id: string,
  config: ModelConfig,
  weights: Weights,
  tokenizer: VqaTokenizer,
  opts: RuntimeOptions,
): Promise<OnnxModelRuntime> {
  const onnx = exportServingOnnx(config, weights);
  const sessionOpts = { executionProviders: opts.executionProviders, intraOpThreads: opts.intraOpThreads };
  const vision = await openSession(onnx['onnx/vision_encoder.onnx'], sessionOpts);
  const decoder = await openSession(onnx['onnx/decoder.onnx'], sessionOpts);
  return new OnnxModelRuntime(
    id,
    {},
    config,
    tokenizer,
    { config, vision: vision.session, decoder: decoder.session },
    decoder.provider,
    opts.maxBatch ?? DEFAULT_MAX_BATCH,
  );
}

/** The loader the server uses: one runtime per package directory. */
export const loadModelRuntime: RuntimeLoader = (packageDir, opts) => loadRuntime(packageDir, opts);
