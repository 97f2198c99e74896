// A trainer worker with its own pool and queue connection: what `npm run worker` runs, and what a
// server runs in-process when CLINVQA_EMBEDDED_WORKER=1 is set with a database.
import type { Logger } from '../audit/logger.ts';
import type { Config } from '../config.ts';
import { migrate } from '../store/migrations.ts';
import { createPool } from '../store/postgres.ts';
import { ClusterWorker } from './cluster-worker.ts';
import { openFineTuneQueue } from './fine-tune-queue.ts';
import { PostgresJobStore } from './job-store.postgres.ts';
import { DEFAULT_UPLOAD_LIMITS } from './upload-validation.ts';

export interface StartedWorker {
  worker: ClusterWorker;
  /** Stops at a checkpoint (the job goes back to the queue) and closes the connections. */
  close(): Promise<void>;
}

export async function startClusterWorker(config: Config, logger: Logger): Promise<StartedWorker> {
  const pool = createPool(config.databaseUrl!, { max: 4, onError: (error) => logger.warn('database connection lost', { error: error.message }) });
  await migrate(pool);
  const boss = await openFineTuneQueue(config.databaseUrl!, { supervise: true, onError: (error) => logger.warn('job queue error', { error: error.message }) });
  const worker = new ClusterWorker({
    pool,
    store: new PostgresJobStore(pool),
    boss,
    dataDir: config.dataDir,
    limits: { ...DEFAULT_UPLOAD_LIMITS, maxImageBytes: config.limits.maxImageBytes, maxInputPixels: config.limits.maxInputPixels },
    logger,
    instanceId: config.instanceId,
    leaseS: config.jobLeaseS,
  });
  await worker.start();
  let closed: Promise<void> | undefined;
  return {
    worker,
    close() {
      closed ??= (async () => {
        await worker.close();
        await boss.stop({ graceful: false, wait: true }).catch(() => undefined);
        await pool.end().catch(() => undefined);
      })();
      return closed;
    },
  };
}
