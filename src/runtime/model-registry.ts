// The in-memory set of loaded models. Requests take a lease on a model (synchronously, so choosing
// a variant and pinning its runtime happen in one tick); loading, replacing and unloading run one
// at a time under a lock. A replaced or unloaded runtime leaves the map at once, so new requests
// stop reaching it, and is disposed only after its last lease is returned and its batcher is idle:
// no in-flight request is dropped by a swap.
import path from 'node:path';
import type { Batcher } from './batcher.ts';
import type { ModelRuntime, RuntimeLoader } from './types.ts';

export interface LoadedModel {
  readonly id: string;
  readonly runtime: ModelRuntime;
  readonly batcher: Batcher;
  readonly loadedAt: Date;
}

export interface ModelLease {
  readonly model: LoadedModel;
  /** Idempotent; must be called when the request is done with the model. */
  release(): void;
}

export interface RegistryOptions {
  loader: RuntimeLoader;
  executionProviders: readonly string[];
  /** ORT intra-op threads per session; the runtime's default when absent. */
  intraOpThreads?: number;
  createBatcher(runtime: ModelRuntime): Batcher;
  /** Lifecycle messages (load, swap, dispose) for the log; never request data. */
  log?(message: string, fields?: Record<string, unknown>): void;
}

interface Entry {
  model: LoadedModel;
  leases: number;
  retired: boolean;
  disposing: boolean;
  /** Settles when the runtime has been disposed; created when the entry is retired. */
  disposed?: Promise<void>;
  markDisposed?: () => void;
}

export class ModelRegistry {
  private readonly current = new Map<string, Entry>();
  private readonly retiring = new Set<Entry>();
  private lock: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: RegistryOptions) {}

  /** Loaded models, sorted by id. */
  list(): LoadedModel[] {
    return [...this.current.values()].map((e) => e.model).sort((a, b) => a.id.localeCompare(b.id));
  }

  has(id: string): boolean {
    return this.current.has(id);
  }

  get size(): number {
    return this.current.size;
  }

  /** Pins the current runtime for `id`, or returns undefined when no such model is loaded. */
  acquire(id: string): ModelLease | undefined {
    const entry = this.current.get(id);
    if (!entry) return undefined;
    entry.leases++;
    let released = false;
    return {
      model: entry.model,
      release: () => {
        if (released) return;
        released = true;
        entry.leases--;
        if (entry.retired && entry.leases === 0) void this.dispose(entry);
      },
    };
  }

  /**
   * Loads the package in `packageDir` and serves it, replacing a loaded model with the same id. The
   * old runtime keeps serving until the new one is ready (a failed load leaves it in place), then
   * finishes the requests it already has.
   */
  loadPackage(packageDir: string): Promise<LoadedModel> {
    return this.locked(async () => this.loadUnlocked(packageDir));
  }

  /**
   * Returns the loaded model for the package in `packageDir`, loading it only if no model with that id
   * is loaded (e.g. before a promote routes traffic to it). Concurrent calls load it once.
   */
  ensureLoaded(packageDir: string): Promise<LoadedModel> {
    return this.locked(async () => this.current.get(path.basename(packageDir))?.model ?? this.loadUnlocked(packageDir));
  }

  /** Serves an already-loaded runtime (replacing one with the same id). */
  install(runtime: ModelRuntime): Promise<LoadedModel> {
    return this.locked(async () => {
      this.assertOpen();
      return this.swapIn(runtime);
    });
  }

  /** Stops routing to `id`; its runtime is disposed after its in-flight requests finish. */
  unload(id: string): Promise<boolean> {
    return this.locked(async () => {
      const entry = this.current.get(id);
      if (!entry) return false;
      this.current.delete(id);
      this.retire(entry);
      return true;
    });
  }

  /**
   * Unloads everything and waits until every runtime, retired ones included, is disposed (that is,
   * until in-flight requests have returned their leases). Loads after this are refused.
   */
  async close(): Promise<void> {
    await this.locked(async () => {
      this.closed = true;
      for (const [id, entry] of this.current) {
        this.current.delete(id);
        this.retire(entry);
      }
    });
    await this.settled();
  }

  /** Resolves when every replaced/unloaded runtime has been disposed. */
  async settled(): Promise<void> {
    await Promise.all([...this.retiring].map((e) => e.disposed));
  }

  private async loadUnlocked(packageDir: string): Promise<LoadedModel> {
    this.assertOpen();
    const { executionProviders, intraOpThreads } = this.options;
    const runtime = await this.options.loader(packageDir, {
      executionProviders: [...executionProviders],
      ...(intraOpThreads !== undefined ? { intraOpThreads } : {}),
    });
    const expected = path.basename(packageDir);
    if (runtime.id !== expected) {
      await runtime.dispose();
      throw new Error(`runtime id "${runtime.id}" does not match its package directory "${expected}"`);
    }
    try {
      return this.swapIn(runtime);
    } catch (error) {
      await runtime.dispose(); // nobody else holds it yet
      throw error;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('model registry is closed');
  }

  private swapIn(runtime: ModelRuntime): LoadedModel {
    // createBatcher may throw; nothing has been changed yet when it does.
    const model: LoadedModel = Object.freeze({
      id: runtime.id,
      runtime,
      batcher: this.options.createBatcher(runtime),
      loadedAt: new Date(),
    });
    const previous = this.current.get(runtime.id);
    // One synchronous assignment: a request arriving now sees either the old or the new runtime.
    this.current.set(runtime.id, { model, leases: 0, retired: false, disposing: false });
    if (previous) this.retire(previous);
    this.options.log?.(previous ? 'model replaced' : 'model loaded', {
      model: runtime.id,
      execution_provider: runtime.executionProvider ?? 'unknown',
    });
    return model;
  }

  private retire(entry: Entry): void {
    entry.retired = true;
    entry.disposed = new Promise<void>((resolve) => (entry.markDisposed = resolve));
    this.retiring.add(entry);
    if (entry.leases === 0) void this.dispose(entry);
  }

  private async dispose(entry: Entry): Promise<void> {
    if (entry.disposing) return;
    entry.disposing = true;
    // A cancelled request returns its lease while its batch may still be running.
    await entry.model.batcher.idle();
    try {
      await entry.model.runtime.dispose();
      this.options.log?.('model disposed', { model: entry.model.id });
    } catch (error) {
      this.options.log?.('model dispose failed', { model: entry.model.id, error: String(error) });
    } finally {
      this.retiring.delete(entry);
      entry.markDisposed?.();
    }
  }

  private locked<T>(work: () => Promise<T>): Promise<T> {
    const result = this.lock.then(work);
    this.lock = result.catch(() => undefined);
    return result;
  }
}
