// Dynamic batching in front of one model. Requests queue; a batch leaves when it is full
// (maxBatch) or when its oldest request has waited maxWaitMs (at once under sparse traffic), and
// only one batch runs at a time, so while the model is busy the next batch fills up by itself.
// With a shared ExecutionLane that also holds across models (see execution-lane.ts). The queue
// is bounded (overflow is refused at once, with a retry hint) and every request has a deadline.
import type { ExecutionLane, LaneUser } from './execution-lane.ts';
import type { InferenceRequest, InferenceResult } from './types.ts';

export interface BatcherOptions {
  /** false = one request per call, no waiting: the benchmark's baseline. */
  enabled: boolean;
  maxBatch: number;
  maxWaitMs: number;
  /** Requests that may wait (not counting the running batch) before new ones are refused. */
  maxQueue: number;
  /** Deadline per request from enqueue to result. */
  timeoutMs: number;
  /** Shared with the other models' batchers: a due batch starts only when no other batch runs. */
  lane?: ExecutionLane;
}

export interface BatchHooks {
  /** Called when a batch finishes (or fails), for metrics. */
  onBatch?(info: { size: number; durationMs: number; failed: boolean }): void;
}

export interface Completed {
  result: InferenceResult;
  queueMs: number;
  inferenceMs: number;
  /** Size of the batch this request ran in. */
  batchSize: number;
}

export interface Ticket {
  readonly done: Promise<Completed>;
  /** The caller no longer wants the answer (client went away): leave the queue if still in it. */
  cancel(): void;
}

export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  constructor(readonly retryAfterSeconds: number) {
    super('inference queue is full');
  }
}

export class InferenceTimeoutError extends Error {
  override readonly name = 'InferenceTimeoutError';
  constructor(readonly timeoutMs: number) {
    super(`no result within ${timeoutMs} ms`);
  }
}

export class RequestCancelledError extends Error {
  override readonly name = 'RequestCancelledError';
}

type RunBatch = (reqs: InferenceRequest[]) => Promise<InferenceResult[]>;

interface Pending {
  req: InferenceRequest;
  enqueuedAt: number;
  settled: boolean;
  /** Nobody is likely to join it: see enqueue. */
  sparse: boolean;
  timer: NodeJS.Timeout;
  resolve(value: Completed): void;
  reject(error: Error): void;
}

export class Batcher implements LaneUser {
  private readonly queue: Pending[] = [];
  private running = 0;
  private waitTimer: NodeJS.Timeout | undefined;
  private lastArrival = -Infinity;
  /** Size of the last batch dispatched (0 before the first). */
  private lastBatchSize = 0;
  private idleWaiters: Array<() => void> = [];
  /** Moving average of batch duration, for the Retry-After estimate. */
  private avgBatchMs = 0;

  constructor(
    private readonly run: RunBatch,
    private readonly options: BatcherOptions,
    private readonly hooks: BatchHooks = {},
  ) {
    if (options.maxBatch < 1 || options.maxQueue < 1) throw new RangeError('maxBatch and maxQueue must be >= 1');
  }

  /** Requests waiting, not yet in a running batch. */
  get queued(): number {
    return this.queue.length;
  }

  get busy(): boolean {
    return this.running > 0;
  }

  /** Joins the queue; throws QueueFullError synchronously when there is no room. */
  enqueue(req: InferenceRequest): Ticket {
    if (this.queue.length >= this.options.maxQueue) throw new QueueFullError(this.retryAfterSeconds());
    let pending!: Pending;
    const now = performance.now();
    // Sparse traffic: a lone client. Its request arrives long after the previous one and the last
    // batch held one request. A gap alone is not enough: with many clients in a closed loop, every
    // client waits on the running batch, so the first request of the next wave also follows a gap,
    // and sending it off alone would split each wave into a batch of one and the rest.
    const sparse = now - this.lastArrival >= this.options.maxWaitMs && this.lastBatchSize <= 1;
    this.lastArrival = now;
    const done = new Promise<Completed>((resolve, reject) => {
      pending = { req, enqueuedAt: now, settled: false, sparse, resolve, reject, timer: undefined as never };
    });
    pending.timer = setTimeout(() => this.fail(pending, new InferenceTimeoutError(this.options.timeoutMs)), this.options.timeoutMs);
    this.queue.push(pending);
    // Decided after the current synchronous work, so requests arriving together still share a batch.
    queueMicrotask(() => this.schedule());
    return {
      done,
      cancel: () => {
        // Nobody awaits a cancelled ticket any more; swallow its rejection.
        done.catch(() => undefined);
        this.fail(pending, new RequestCancelledError('cancelled by caller'));
      },
    };
  }

  /** Resolves once nothing is queued or running (graceful shutdown, runtime disposal). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private retryAfterSeconds(): number {
    const batchesAhead = Math.ceil(this.queue.length / this.effectiveMaxBatch()) + 1;
    return Math.max(1, Math.ceil((batchesAhead * Math.max(this.avgBatchMs, 1)) / 1000));
  }

  private effectiveMaxBatch(): number {
    return this.options.enabled ? this.options.maxBatch : 1;
  }

  private fail(pending: Pending, error: Error): void {
    if (pending.settled) return;
    pending.settled = true;
    clearTimeout(pending.timer);
    const index = this.queue.indexOf(pending);
    if (index >= 0) this.queue.splice(index, 1);
    pending.reject(error);
    this.notifyIfIdle();
  }

  /** The shared lane came free: start the batch that is due, if any. */
  laneFree(): void {
    this.schedule();
  }

  private schedule(): void {
    if (this.running > 0 || this.queue.length === 0) return;
    const maxBatch = this.effectiveMaxBatch();
    const first = this.queue[0]!;
    const waited = performance.now() - first.enqueuedAt;
    // Under sparse traffic waiting only adds latency (a lone client paid the whole max wait on
    // every request); when requests come close together, the first waits for company.
    const wait = first.sparse ? 0 : this.options.maxWaitMs;
    const due = !this.options.enabled || this.queue.length >= maxBatch || waited >= wait;
    if (due) {
      if (this.waitTimer) clearTimeout(this.waitTimer);
      this.waitTimer = undefined;
      // Another model's batch is running: wait for laneFree, then take what has queued by then.
      if (this.options.lane && !this.options.lane.tryAcquire(this)) return;
      void this.dispatch(this.queue.splice(0, maxBatch));
    } else if (!this.waitTimer) {
      this.waitTimer = setTimeout(
        () => {
          this.waitTimer = undefined;
          this.schedule();
        },
        Math.max(0, this.options.maxWaitMs - waited),
      );
    }
  }

  private async dispatch(batch: Pending[]): Promise<void> {
    this.running++;
    this.lastBatchSize = batch.length;
    const started = performance.now();
    let failed = false;
    try {
      // Every request in the batch runs, even one that timed out meanwhile: the runtime has no
      // per-row cancel, and dropping rows would change batch composition mid-flight.
      const results = await Promise.resolve().then(() => this.run(batch.map((p) => p.req)));
      if (!Array.isArray(results) || results.length !== batch.length) {
        throw new Error(`runtime returned ${Array.isArray(results) ? results.length : 'no'} results for a batch of ${batch.length}`);
      }
      const inferenceMs = performance.now() - started;
      batch.forEach((pending, i) => {
        if (pending.settled) return;
        pending.settled = true;
        clearTimeout(pending.timer);
        pending.resolve({ result: results[i]!, queueMs: started - pending.enqueuedAt, inferenceMs, batchSize: batch.length });
      });
    } catch (error) {
      failed = true;
      const reason = error instanceof Error ? error : new Error(String(error));
      for (const pending of batch) this.fail(pending, reason);
    } finally {
      const durationMs = performance.now() - started;
      this.avgBatchMs = this.avgBatchMs === 0 ? durationMs : 0.8 * this.avgBatchMs + 0.2 * durationMs;
      this.running--;
      // Freed first, so a model that has been waiting runs before this one's next batch.
      this.options.lane?.release(this);
      this.hooks.onBatch?.({ size: batch.length, durationMs, failed });
      this.schedule();
      this.notifyIfIdle();
    }
  }

  private notifyIfIdle(): void {
    if (this.queue.length > 0 || this.running > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
