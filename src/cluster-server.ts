// Wiring of a server replica in a cluster deployment (CLINVQA_DATABASE_URL set): the shared stores in
// Postgres, the replica sync (A/B table and models via LISTEN/NOTIFY with a periodic re-read), and
// the fine-tune routes backed by the pg-boss queue. Training happens in `npm run worker` processes.
import { existsSync } from 'node:fs';
import type { Router } from 'express';
import type { AppParts, SharedStores } from './app.ts';
import { PostgresAuditSink } from './audit/audit-log.postgres.ts';
import type { Logger } from './audit/logger.ts';
import type { Config } from './config.ts';
import { PostgresFeedbackStore } from './feedback/feedback-store.postgres.ts';
import { adminJobsRouter } from './http/routes/admin-jobs.route.ts';
import { ClusterJobQueue } from './jobs/cluster-job-queue.ts';
import { openFineTuneQueue } from './jobs/fine-tune-queue.ts';
import { JOB_EVENTS_CHANNEL, PostgresJobStore } from './jobs/job-store.postgres.ts';
import { DEFAULT_UPLOAD_LIMITS, type UploadLimits } from './jobs/upload-validation.ts';
import { findServedPackage, modelSources } from './registry/model-sources.ts';
import { PostgresAbTableStore } from './routing/ab-table-store.postgres.ts';
import { GRPO_DEFAULTS } from './training/grpo/grpo-config.ts';
import { migrate } from './store/migrations.ts';
import { createPool } from './store/postgres.ts';
import { announceModel } from './cluster/served-models.ts';
import { ReplicaSync } from './cluster/replica-sync.ts';

export interface ClusterServer {
  stores: SharedStores;
  audit: PostgresAuditSink;
  extraRouters(parts: AppParts): Router[];
  /** Stops listening and closes the queue and the pool (after the app has closed its stores). */
  close(): Promise<void>;
}

export async function createClusterServer(config: Config, logger: Logger): Promise<ClusterServer> {
  const url = config.databaseUrl!;
  const pool = createPool(url, { max: 8, onError: (error) => logger.warn('database connection lost', { error: error.message }) });
  await migrate(pool);
  const boss = await openFineTuneQueue(url, { supervise: false, onError: (error) => logger.warn('job queue error', { error: error.message }) });
  const jobs = new PostgresJobStore(pool);
  const queue = new ClusterJobQueue({
    store: jobs,
    boss,
    dataDir: config.dataDir,
    modelsDir: config.modelsDir,
    standardValidation: GRPO_DEFAULTS.validation.filter((p) => existsSync(p)),
  });
  const feedback = new PostgresFeedbackStore(pool, {
    dataDir: config.dataDir,
    instance: config.instanceId,
    log: (message, fields) => logger.warn(message, fields),
  });
  const audit = new PostgresAuditSink(pool, { replica: config.instanceId, dataDir: config.dataDir, log: (message, fields) => logger.warn(message, fields) });
  let abTable: PostgresAbTableStore | undefined;
  let sync: ReplicaSync | undefined;

  const stores: SharedStores = {
    feedback,
    async openAbTable(options) {
      abTable = await PostgresAbTableStore.open(pool, options);
      return abTable;
    },
    async onModelChange(change) {
      await announceModel(pool, { id: change.id, package_dir: change.packageDir, state: change.state });
    },
    async start(parts) {
      // The models this replica found in its models dir are the deployment's too.
      const sources = modelSources(config.modelsDir, config.dataDir);
      for (const model of parts.registry.list()) {
        const pkg = await findServedPackage(sources, model.id);
        if (pkg) await announceModel(pool, { id: model.id, package_dir: pkg.dir, state: 'loaded' }).catch(() => undefined);
      }
      sync = new ReplicaSync({
        pool,
        url,
        registry: parts.registry,
        abTable: abTable!,
        modelsDir: config.modelsDir,
        logger,
        extra: { [JOB_EVENTS_CHANNEL]: (payload) => void queue.onEventNotification(payload).catch(() => undefined) },
      });
      await sync.start();
    },
    async close() {
      queue.close();
      await sync?.close();
      await boss.stop({ graceful: false, wait: true }).catch(() => undefined);
      await pool.end().catch(() => undefined);
    },
  };
  return {
    stores,
    audit,
    extraRouters(parts) {
      const limits: UploadLimits = {
        ...DEFAULT_UPLOAD_LIMITS,
        maxImageBytes: parts.config.limits.maxImageBytes,
        maxInputPixels: parts.config.limits.maxInputPixels,
      };
      return [adminJobsRouter({ queue, store: jobs, limits })];
    },
    close: () => stores.close!(),
  };
}
