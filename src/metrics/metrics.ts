// Prometheus metrics on a registry of our own (not prom-client's global one, so tests and a
// second app in one process do not collide). Labels are routes (contract templates), methods,
// statuses, model ids and variant names only: never anything a patient said or showed.
import client from 'prom-client';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64];
const TOKEN_BUCKETS = [8, 16, 32, 64, 128, 256, 512, 1024];

export interface InferenceObservation {
  model: string;
  variant: string;
  inferenceMs: number;
  queueMs: number;
  batchSize: number;
  promptTokens: number;
  completionTokens: number;
}

export class Metrics {
  readonly registry = new client.Registry();
  private readonly httpRequests: client.Counter<'route' | 'method' | 'status'>;
  private readonly httpDuration: client.Histogram<'route' | 'method' | 'status'>;
  private readonly inferenceDuration: client.Histogram<'model' | 'variant'>;
  private readonly queueDuration: client.Histogram<'model' | 'variant'>;
  private readonly batchSize: client.Histogram<'model' | 'variant'>;
  private readonly promptTokens: client.Counter<'model' | 'variant'>;
  private readonly completionTokens: client.Counter<'model' | 'variant'>;
  private readonly promptTokensPerRequest: client.Histogram<'model' | 'variant'>;
  private readonly completionTokensPerRequest: client.Histogram<'model' | 'variant'>;
  private readonly rejected: client.Counter<'model' | 'reason'>;
  private readonly feedback: client.Counter<'variant' | 'verdict'>;
  private readonly decodeRejected: client.Counter<'lane'>;

  constructor(options: { collectProcessMetrics?: boolean; queueDepth?: () => Array<{ model: string; depth: number }> } = {}) {
    const registers = [this.registry];
    if (options.collectProcessMetrics !== false) client.collectDefaultMetrics({ register: this.registry, prefix: 'clinvqa_' });
    this.httpRequests = new client.Counter({
      name: 'clinvqa_http_requests_total',
      help: 'HTTP requests by route template, method and status.',
      labelNames: ['route', 'method', 'status'],
      registers,
    });
    this.httpDuration = new client.Histogram({
      name: 'clinvqa_http_request_duration_seconds',
      help: 'HTTP request latency.',
      labelNames: ['route', 'method', 'status'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.inferenceDuration = new client.Histogram({
      name: 'clinvqa_inference_duration_seconds',
      help: 'Time in the model (vision + decode) of the batch a request ran in.',
      labelNames: ['model', 'variant'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.queueDuration = new client.Histogram({
      name: 'clinvqa_queue_wait_seconds',
      help: 'Time a request waited for its batch to start.',
      labelNames: ['model', 'variant'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.batchSize = new client.Histogram({
      name: 'clinvqa_batch_size',
      help: 'Size of the batch each request ran in.',
      labelNames: ['model', 'variant'],
      buckets: BATCH_BUCKETS,
      registers,
    });
    this.promptTokens = new client.Counter({
      name: 'clinvqa_prompt_tokens_total',
      help: 'Prompt tokens (image + question) processed.',
      labelNames: ['model', 'variant'],
      registers,
    });
    this.completionTokens = new client.Counter({
      name: 'clinvqa_completion_tokens_total',
      help: 'Tokens generated.',
      labelNames: ['model', 'variant'],
      registers,
    });
    this.promptTokensPerRequest = new client.Histogram({
      name: 'clinvqa_prompt_tokens',
      help: 'Prompt tokens per request.',
      labelNames: ['model', 'variant'],
      buckets: TOKEN_BUCKETS,
      registers,
    });
    this.completionTokensPerRequest = new client.Histogram({
      name: 'clinvqa_completion_tokens',
      help: 'Generated tokens per request.',
      labelNames: ['model', 'variant'],
      buckets: TOKEN_BUCKETS,
      registers,
    });
    this.rejected = new client.Counter({
      name: 'clinvqa_inference_rejected_total',
      help: 'Inference requests refused (queue_full) or abandoned (timeout, cancelled).',
      labelNames: ['model', 'reason'],
      registers,
    });
    this.decodeRejected = new client.Counter({
      name: 'clinvqa_decode_rejected_total',
      help: 'Images refused because their decoding lane (standard or large) was full.',
      labelNames: ['lane'],
      registers,
    });
    this.feedback = new client.Counter({
      name: 'clinvqa_feedback_total',
      help: 'Feedback on answers by variant and verdict (correct, incorrect, unrated).',
      labelNames: ['variant', 'verdict'],
      registers,
    });
    if (options.queueDepth) {
      const depth = options.queueDepth;
      new client.Gauge({
        name: 'clinvqa_queue_depth',
        help: 'Requests waiting for a batch, per model.',
        labelNames: ['model'],
        registers,
        collect() {
          this.reset();
          for (const { model, depth: d } of depth()) this.set({ model }, d);
        },
      });
    }
  }

  observeHttp(route: string, method: string, status: number, seconds: number): void {
    const labels = { route, method, status: String(status) };
    this.httpRequests.inc(labels);
    this.httpDuration.observe(labels, seconds);
  }

  observeInference(o: InferenceObservation): void {
    const labels = { model: o.model, variant: o.variant };
    this.inferenceDuration.observe(labels, o.inferenceMs / 1000);
    this.queueDuration.observe(labels, o.queueMs / 1000);
    this.batchSize.observe(labels, o.batchSize);
    this.promptTokens.inc(labels, o.promptTokens);
    this.completionTokens.inc(labels, o.completionTokens);
    this.promptTokensPerRequest.observe(labels, o.promptTokens);
    this.completionTokensPerRequest.observe(labels, o.completionTokens);
  }

  observeDecodeRejection(lane: 'standard' | 'large'): void {
    this.decodeRejected.inc({ lane });
  }

  observeRejection(model: string, reason: 'queue_full' | 'timeout' | 'cancelled'): void {
    this.rejected.inc({ model, reason });
  }

  /** `correct` undefined = a rating without a correct/incorrect verdict. */
  observeFeedback(variant: string, correct: boolean | undefined | null): void {
    this.feedback.inc({ variant, verdict: correct === true ? 'correct' : correct === false ? 'incorrect' : 'unrated' });
  }

  contentType(): string {
    return this.registry.contentType;
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
