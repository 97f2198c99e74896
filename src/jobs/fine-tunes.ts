// Fine-tuning's lifecycle in a server: the job store and queue under the data dir, started with the
// two hooks into serving that the host supplies — a finished package is loaded into the registry
// (no restart) and, with a canary weight, put into the A/B table. app.ts mounts the admin router over
// the started queue (fineTuneRouters). Use:
//   const fineTunes = createFineTunes({ dataDir: config.dataDir, modelsDir: config.modelsDir });
//   startServer({ config, loader, logger, extraRouters: (parts) => fineTuneRouters(fineTunes, parts) });
//   … on shutdown: await fineTunes.close();
import { existsSync } from 'node:fs';
import type { Logger } from '../audit/logger.ts';
import { GRPO_DEFAULTS } from '../training/grpo/grpo-config.ts';
import { JobQueue } from './job-queue.ts';
import { JobStore } from './job-store.ts';
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from './upload-validation.ts';

export interface FineTunesOptions {
  dataDir: string;
  modelsDir: string;
  limits?: Partial<UploadLimits>;
  /** JSONL files scored before and after every job; default: the shared validation splits that exist. */
  standardValidation?: string[];
  workerThreads?: number;
  maxCrashes?: number;
  retryDelayMs?: number;
  stopTimeoutMs?: number;
}

/** What the serving side lends fine-tuning. */
export interface FineTuneHost {
  logger: Logger;
  /** The server's image limits, which uploaded images obey too. */
  imageLimits: { maxImageBytes: number; maxInputPixels: number };
  /** Loads a finished package so that it serves without a restart. */
  registerModel(dir: string): Promise<void>;
  setCanary(modelId: string, share: number): void;
}

export interface FineTunes {
  /** Opens the store and starts the queue (once the host's parts exist). */
  start(host: FineTuneHost): { queue: JobQueue; store: JobStore; limits: UploadLimits };
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
    start(host) {
      const limits: UploadLimits = {
        ...DEFAULT_UPLOAD_LIMITS,
        maxImageBytes: host.imageLimits.maxImageBytes,
        maxInputPixels: host.imageLimits.maxInputPixels,
        ...options.limits,
      };
      store = JobStore.open(options.dataDir);
      queue = new JobQueue({
        store,
        dataDir: options.dataDir,
        modelsDir: options.modelsDir,
        limits,
        logger: host.logger,
        registerModel: (_id, dir) => host.registerModel(dir),
        setCanary: (id, share) => host.setCanary(id, share),
        standardValidation: options.standardValidation ?? GRPO_DEFAULTS.validation.filter((p) => existsSync(p)),
        ...(options.workerThreads !== undefined ? { workerThreads: options.workerThreads } : {}),
        ...(options.maxCrashes !== undefined ? { maxCrashes: options.maxCrashes } : {}),
        ...(options.retryDelayMs !== undefined ? { retryDelayMs: options.retryDelayMs } : {}),
        ...(options.stopTimeoutMs !== undefined ? { stopTimeoutMs: options.stopTimeoutMs } : {}),
      });
      const starting = queue.start();
      starting.catch((error: unknown) => host.logger.error('fine-tune queue failed to start', { error: String(error) }));
      markStarted(starting);
      return { queue, store, limits };
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
