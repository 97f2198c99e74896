// One visual question, end to end: pick the model (request override, else the A/B table), pin it
// with a registry lease, preprocess the image with that model's image config, queue it on the
// model's batcher, and record what happened (metrics, feedback store). HTTP-free: routes turn the
// outcome into JSON or SSE, and errors into problem documents via http/error-translation.ts.
import { createHash, randomUUID } from 'node:crypto';
import { ApiError } from '../errors.ts';
import type { Logger } from '../audit/logger.ts';
import type { Metrics } from '../metrics/metrics.ts';
import type { ModelLease, ModelRegistry } from '../runtime/model-registry.ts';
import { InferenceTimeoutError, QueueFullError, RequestCancelledError, type Completed } from '../runtime/batcher.ts';
import type { InferenceResult } from '../runtime/types.ts';
import type { PreprocessStage } from './preprocess-stage.ts';
import { OVERRIDE_VARIANT, type ResponseRecorder, type VariantSelector } from './variant-selection.ts';

export const QUESTION_MAX_CHARS = 2000;
export const DEFAULT_PARAMS = Object.freeze({ temperature: 0, topP: 1, maxTokens: 256 });

export interface VqaInput {
  image: Uint8Array | undefined;
  question: string;
  /** Instructions for models that take a system turn (chat templates); others ignore it. */
  systemPrompt?: string;
  /** Explicit model id; bypasses the A/B table. */
  model?: string;
  clientId?: string;
  temperature?: number;
  topP?: number;
  maxTokens?: number;
  seed?: number;
}

export interface VqaContext {
  /** Filled in as soon as known, so the audit trail has them even when the request fails. */
  audit: { model?: string; variant?: string; imageSha256?: string };
  /** Aborted when the client goes away: the request leaves the queue. */
  signal?: AbortSignal;
  /** Prefix of the response id, e.g. `vqa` or `chatcmpl`. */
  idPrefix?: string;
  /** The caller's key id, stored with the response for the feedback loop. */
  keyId?: string;
}

export interface VqaOutcome {
  id: string;
  model: string;
  variant: string;
  result: InferenceResult;
  timings: { preprocess_ms: number; queue_ms: number; vision_ms: number; decode_ms: number; total_ms: number };
  batchSize: number;
  createdAt: Date;
}

export interface VqaServiceDeps {
  registry: ModelRegistry;
  selector: VariantSelector;
  recorder?: ResponseRecorder;
  metrics: Metrics;
  limits: { maxImageBytes: number; maxInputPixels: number };
  logger: Logger;
  /** Bounded, cost-aware decoding; without it images are decoded as they come. */
  preprocessStage?: PreprocessStage;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;

export class VqaService {
  constructor(private readonly deps: VqaServiceDeps) {}

  async answer(input: VqaInput, ctx: VqaContext): Promise<VqaOutcome> {
    const started = performance.now();
    const createdAt = new Date();
    checkQuestion(input.question);
    if (input.image === undefined || input.image.length === 0) throw ApiError.of('image_missing', 'No image was sent, or it is empty.');
    // Hashed before decoding so the audit trail identifies rejected uploads too.
    ctx.audit.imageSha256 = createHash('sha256').update(input.image).digest('hex');

    const { lease, variant, tableVersion } = this.pin(input);
    const model = lease.model;
    ctx.audit.model = model.id;
    ctx.audit.variant = variant;
    try {
      // 0. the whole question must fit this model's context: refused, never cut
      model.runtime.checkPrompt(input.question);

      // 1. preprocess with this model's own image processor
      const t0 = performance.now();
      const limits = { maxInputPixels: this.deps.limits.maxInputPixels, maxBytes: this.deps.limits.maxImageBytes };
      const bytes = input.image;
      const prepare = () => model.runtime.prepareImage(bytes, limits);
      const image = this.deps.preprocessStage
        ? await this.deps.preprocessStage.run(bytes, { ...limits, targetSize: model.runtime.decodeTargetSize }, prepare, ctx.signal)
        : await prepare();
      const preprocessMs = performance.now() - t0;
      if (ctx.signal?.aborted) throw new RequestCancelledError('client went away');

      // 2. queue on the model's batcher (vision + decode run batched with other requests)
      const completed = await this.runQueued(
        model.id,
        model.batcher,
        {
          patches: image.patches,
          ...(image.gridThw !== undefined ? { gridThw: image.gridThw } : {}),
          question: input.question,
          ...(input.systemPrompt !== undefined ? { systemPrompt: input.systemPrompt } : {}),
          params: {
            temperature: input.temperature ?? DEFAULT_PARAMS.temperature,
            topP: input.topP ?? DEFAULT_PARAMS.topP,
            maxTokens: input.maxTokens ?? DEFAULT_PARAMS.maxTokens,
            ...(input.seed !== undefined ? { seed: input.seed } : {}),
          },
        },
        ctx.signal,
      );

      // 3. account for it
      const { result } = completed;
      const totalMs = performance.now() - started;
      this.deps.metrics.observeInference({
        model: model.id,
        variant,
        inferenceMs: completed.inferenceMs,
        queueMs: completed.queueMs,
        batchSize: completed.batchSize,
        promptTokens: result.promptTokens,
        completionTokens: result.completionTokens,
      });
      const id = `${ctx.idPrefix ?? 'vqa'}-${randomUUID()}`;
      await this.record({
        responseId: id,
        model: model.id,
        variant,
        latencyMs: totalMs,
        createdAt,
        ...(tableVersion !== undefined ? { tableVersion } : {}),
        ...(ctx.keyId !== undefined ? { clientKeyId: ctx.keyId } : {}),
      });
      return {
        id,
        model: model.id,
        variant,
        result,
        batchSize: completed.batchSize,
        createdAt,
        timings: {
          preprocess_ms: round(preprocessMs),
          queue_ms: round(completed.queueMs),
          vision_ms: round(result.timings.visionMs),
          decode_ms: round(result.timings.decodeMs),
          total_ms: round(totalMs),
        },
      };
    } finally {
      lease.release();
    }
  }

  /** Chooses the model and takes its lease in the same tick, so a swap cannot fall in between. */
  private pin(input: VqaInput): { lease: ModelLease; variant: string; tableVersion?: number } {
    const { registry, selector } = this.deps;
    if (input.model !== undefined) {
      const lease = registry.acquire(input.model);
      if (!lease) throw ApiError.of('model_not_found', `No model "${input.model}" is loaded; GET /v1/models lists them.`);
      return { lease, variant: OVERRIDE_VARIANT };
    }
    const available = registry.list().map((m) => m.id);
    const choice = selector.choose(input.clientId, available);
    const lease = choice ? registry.acquire(choice.model) : undefined;
    if (!choice || !lease) {
      throw ApiError.of('model_unavailable', available.length === 0 ? 'No model is loaded yet.' : 'No model of the A/B table is loaded.', {
        headers: { 'Retry-After': '5' },
      });
    }
    return { lease, variant: choice.variant, ...(choice.tableVersion !== undefined ? { tableVersion: choice.tableVersion } : {}) };
  }

  private async runQueued(
    modelId: string,
    batcher: ModelLease['model']['batcher'],
    request: Parameters<ModelLease['model']['batcher']['enqueue']>[0],
    signal: AbortSignal | undefined,
  ): Promise<Completed> {
    let ticket: ReturnType<typeof batcher.enqueue>;
    try {
      ticket = batcher.enqueue(request);
    } catch (error) {
      if (error instanceof QueueFullError) this.deps.metrics.observeRejection(modelId, 'queue_full');
      throw error;
    }
    const onAbort = (): void => ticket.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      return await ticket.done;
    } catch (error) {
      if (error instanceof InferenceTimeoutError) this.deps.metrics.observeRejection(modelId, 'timeout');
      if (error instanceof RequestCancelledError) this.deps.metrics.observeRejection(modelId, 'cancelled');
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** A failure to record must not cost the clinician the answer; it is logged instead. */
  private async record(response: Parameters<ResponseRecorder['recordResponse']>[0]): Promise<void> {
    if (!this.deps.recorder) return;
    try {
      await this.deps.recorder.recordResponse(response);
    } catch (error) {
      this.deps.logger.warn('recording the response for feedback failed', {
        response_id: response.responseId,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
}

/** Server-side question check, for callers (chat) whose question is assembled, not validated by schema. */
export function checkQuestion(question: string): void {
  if (question.trim() === '') throw ApiError.of('question_empty', 'The question is empty.');
  if ([...question].length > QUESTION_MAX_CHARS) {
    throw ApiError.of('invalid_request', `The question is longer than ${QUESTION_MAX_CHARS} characters.`);
  }
}
