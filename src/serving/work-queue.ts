// A bounded stage of work: at most `concurrency` tasks run at once, at most `maxQueue` wait, and
// anything beyond is refused at once with a retry hint, so load past capacity turns into fast
// 503s instead of an ever-growing wait that every later request shares.

export interface WorkQueueOptions {
  concurrency: number;
  maxQueue: number;
  /** Clock for the retry estimate (tests inject one). */
  now?: () => number;
}

export class WorkQueueFullError extends Error {
  override readonly name = 'WorkQueueFullError';
  constructor(readonly retryAfterSeconds: number) {
    super('work queue is full');
  }
}

export class WorkCancelledError extends Error {
  override readonly name = 'WorkCancelledError';
}

interface Waiting {
  start(): void;
  cancel(): void;
}

export class WorkQueue {
  private active = 0;
  private readonly waiting: Waiting[] = [];
  /** Moving average of a task's duration, for Retry-After. */
  private avgTaskMs = 0;
  private readonly now: () => number;

  constructor(private readonly options: WorkQueueOptions) {
    if (!(options.concurrency >= 1) || !(options.maxQueue >= 0)) throw new RangeError('concurrency must be >= 1 and maxQueue >= 0');
    this.now = options.now ?? (() => performance.now());
  }

  get running(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * Runs `task` when a slot is free. Throws WorkQueueFullError synchronously when neither a slot
   * nor a queue place is free; rejects with WorkCancelledError if `signal` aborts while waiting.
   */
  run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.active < this.options.concurrency) return this.execute(task);
    if (this.waiting.length >= this.options.maxQueue) throw new WorkQueueFullError(this.retryAfterSeconds());
    if (signal?.aborted) return Promise.reject(new WorkCancelledError('cancelled before it started'));
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => entry.cancel();
      const entry: Waiting = {
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.execute(task).then(resolve, reject);
        },
        cancel: () => {
          const index = this.waiting.indexOf(entry);
          if (index < 0) return;
          this.waiting.splice(index, 1);
          reject(new WorkCancelledError('cancelled while waiting'));
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(entry);
    });
  }

  private async execute<T>(task: () => Promise<T>): Promise<T> {
    this.active++;
    const started = this.now();
    try {
      return await task();
    } finally {
      const ms = this.now() - started;
      this.avgTaskMs = this.avgTaskMs === 0 ? ms : 0.8 * this.avgTaskMs + 0.2 * ms;
      this.active--;
      this.waiting.shift()?.start();
    }
  }

  private retryAfterSeconds(): number {
    const rounds = Math.ceil((this.waiting.length + 1) / this.options.concurrency);
    return Math.max(1, Math.ceil((rounds * this.avgTaskMs) / 1000));
  }
}
