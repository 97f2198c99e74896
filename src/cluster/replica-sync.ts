// Keeps one server replica in step with the shared database without restarts: the A/B table and the
// set of served models are re-read when another process announces a change (LISTEN/NOTIFY) and, as a
// fallback for announcements lost while the listener was disconnected, every `fallbackMs`.
// Inference never waits for any of this: it reads the in-memory table and registry.
import path from 'node:path';
import type { Logger } from '../audit/logger.ts';
import type { ModelRegistry } from '../runtime/model-registry.ts';
import type { PostgresAbTableStore } from '../routing/ab-table-store.postgres.ts';
import { AB_TABLE_CHANNEL } from '../routing/ab-table-store.postgres.ts';
import { DatabaseListener } from '../store/notifications.ts';
import type { Pool } from '../store/postgres.ts';
import { MODELS_CHANNEL, servedModels, takePendingCanary } from './served-models.ts';

export interface ReplicaSyncOptions {
  pool: Pool;
  url: string;
  registry: ModelRegistry;
  abTable: PostgresAbTableStore;
  modelsDir: string;
  logger: Logger;
  /** Re-read period when no announcement came (default 5 s). */
  fallbackMs?: number;
  /** Extra channels and what to do on them (e.g. fine-tune events for SSE). */
  extra?: Record<string, (payload: string) => void>;
}

export class ReplicaSync {
  private readonly listener: DatabaseListener;
  private readonly timer: NodeJS.Timeout;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly options: ReplicaSyncOptions) {
    const extra = options.extra ?? {};
    this.listener = new DatabaseListener({
      url: options.url,
      channels: [AB_TABLE_CHANNEL, MODELS_CHANNEL, ...Object.keys(extra)],
      onNotify: (channel, payload) => {
        if (channel === AB_TABLE_CHANNEL || channel === MODELS_CHANNEL) this.kick();
        else extra[channel]?.(payload);
      },
      onReconnect: () => this.kick(),
      log: (message, fields) => options.logger.warn(message, fields),
    });
    this.timer = setInterval(() => this.kick(), options.fallbackMs ?? 5000);
    this.timer.unref();
  }

  async start(): Promise<void> {
    await this.listener.start();
    await this.syncNow();
  }

  /** Runs a sync now, or once more right after the one in progress. */
  kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.syncOnce()
      .catch((error: unknown) => this.options.logger.warn('replica sync failed; retrying', { error: error instanceof Error ? error.message : String(error) }))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** One sync, awaited (start-up and tests). */
  async syncNow(): Promise<void> {
    await this.running;
    await this.syncOnce();
  }

  private async syncOnce(): Promise<void> {
    const { pool, registry, abTable, logger } = this.options;
    let changed = false;
    for (const model of await servedModels(pool)) {
      if (model.state === 'loaded' && !registry.has(model.id)) {
        const dir = path.isAbsolute(model.package_dir) ? model.package_dir : path.join(this.options.modelsDir, model.package_dir);
        try {
          await registry.ensureLoaded(dir);
          changed = true;
          logger.info('model loaded as another process announced', { model: model.id });
        } catch (error) {
          logger.error('announced model could not be loaded here', { model: model.id, error: error instanceof Error ? error.message : String(error) });
          continue;
        }
      } else if (model.state === 'unloaded' && registry.has(model.id) && !abTable.current.variants.some((v) => v.model === model.id && v.weight > 0)) {
        await registry.unload(model.id);
        changed = true;
        logger.info('model unloaded as another process announced', { model: model.id });
      }
      if (model.state === 'loaded' && registry.has(model.id)) {
        const canary = await takePendingCanary(pool, model.id);
        if (canary) {
          try {
            await abTable.setCanary(model.id, canary.share);
          } catch (error) {
            logger.warn('the canary of a finished fine-tune could not be added to the A/B table', {
              job_id: canary.jobId,
              error: error instanceof Error ? error.message : String(error),
            });
          }
        }
      }
    }
    await abTable.refresh();
    if (changed) await abTable.followModels(registry.list().map((m) => m.id));
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.listener.close();
    await this.running;
  }
}
