// Wires fine-tuning into a server: the job store and queue under the data dir, the admin router, and
// the two hooks into serving — a finished package is loaded into the registry (no restart) and, with
// a canary weight, put into the A/B table. Use:
//   const fineTunes = createFineTunes({ dataDir: config.dataDir, modelsDir: config.modelsDir });
//   startServer({ config, loader, logger, extraRouters: (parts) => fineTunes.routers(parts) });
//   … on shutdown: await fineTunes.close();
import type { Router } from 'express';
import type { AppParts } from '../app.ts';
import { adminJobsRouter } from '../http/routes/admin-jobs.route.ts';
import { GRPO_DEFAULTS } from '../training/grpo/grpo-config.ts';
import { JobQueue } from './job-queue.ts';
import { JobStore } from './job-store.ts';
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from './upload-validation.ts';

export interface FineTunesOptions {
  dataDir: string;
  modelsDir: string;
  limits?: Partial<UploadLimits>;
  /** JSONL files scored before and after every job; default: the shared validation splits. */
  standardValidation?: string[];
  workerThreads?: number;
  maxCrashes?: number;
  retryDelayMs?: number;
  stopTimeoutMs?: number;
}

export interface FineTunes {
  /** For createApp's `extraRouters`: opens the store, starts the queue, returns the admin router. */
  routers(parts: AppParts): Router[];
  /** Settles when the queue has recovered its jobs after a restart. */
  readonly started: Promise<void>;
  readonly queue: JobQueue | undefined;
  readonly store: JobStore | undefined;
  /** Stops the worker at a checkpoint (the job resumes on the next start) and closes the store. */
  close(): Promise<void>;
}

export function createFineTunes(options: FineTunesOptions): FineTunes {
  let queue: JobQueue | undefined;
  let store: JobStore | undefined;
  let markStarted!: (p: Promise<void>) => void;
  const started = new Promise<void>((resolve) => (markStarted = (p) => resolve(p)));
  let closed: Promise<void> | undefined;
  return {
    get queue() {
      return queue;
    },
    get store() {
      return store;
    },
    started,
    routers(parts) {
      const limits: UploadLimits = {
        ...DEFAULT_UPLOAD_LIMITS,
        maxImageBytes: parts.config.limits.maxImageBytes,
        maxInputPixels: parts.config.limits.maxInputPixels,
        ...options.limits,
      };
      store = JobStore.open(options.dataDir);
      queue = new JobQueue({
        store,
        dataDir: options.dataDir,
        modelsDir: options.modelsDir,
        limits,
        logger: parts.logger,
        registerModel: async (_id, dir) => {
          await parts.registry.loadPackage(dir);
        },
        setCanary: (id, share) => {
          parts.abTable.setCanary(id, share);
        },
        // Every configured file, found or not: a job that cannot find one says so in its events.
        standardValidation: options.standardValidation ?? GRPO_DEFAULTS.validation,
        ...(options.workerThreads !== undefined ? { workerThreads: options.workerThreads } : {}),
        ...(options.maxCrashes !== undefined ? { maxCrashes: options.maxCrashes } : {}),
        ...(options.retryDelayMs !== undefined ? { retryDelayMs: options.retryDelayMs } : {}),
        ...(options.stopTimeoutMs !== undefined ? { stopTimeoutMs: options.stopTimeoutMs } : {}),
      });
      const starting = queue.start();
      starting.catch((error: unknown) => parts.logger.error('fine-tune queue failed to start', { error: String(error) }));
      markStarted(starting);
      return [adminJobsRouter({ queue, store, limits })];
    },
    close() {
      closed ??= (async () => {
        await queue?.close();
        store?.close();
      })();
      return closed;
    },
  };
}
