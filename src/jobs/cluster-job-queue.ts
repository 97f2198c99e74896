// The fine-tune API of a server replica in a cluster deployment: it records the job in Postgres,
// stages the upload on the shared data dir and puts the job on the pg-boss queue; trainer workers
// (`npm run worker`) validate, train and record. Events reach this replica's SSE streams through
// LISTEN (any worker, any replica), so a client may follow a job on any replica.
import { EventEmitter } from 'node:events';
import path from 'node:path';
import type PgBoss from 'pg-boss';
import { findServedPackage, modelSources } from '../registry/model-sources.ts';
import { removeStagedUpload, stageUpload } from './dataset-store.ts';
import { FINE_TUNE_QUEUE, type FineTuneMessage } from './fine-tune-queue.ts';
import { JobFinishedError, UnknownBaseModelError, resultModelId } from './job-queue.ts';
import { TERMINAL_STATUSES, newJobId, type FineTuneJob } from './job-store.ts';
import type { PostgresJobStore } from './job-store.postgres.ts';
import type { FineTuneRequest } from './upload-validation.ts';

export interface ClusterJobQueueOptions {
  store: PostgresJobStore;
  boss: PgBoss;
  dataDir: string;
  modelsDir: string;
  standardValidation: readonly string[];
  workerThreads?: number;
}

export class ClusterJobQueue {
  /** 'event' (JobEvent) for every event of any job; 'job' (FineTuneJob) when one ends. */
  readonly emitter = new EventEmitter();

  constructor(private readonly options: ClusterJobQueueOptions) {
    this.emitter.setMaxListeners(0);
  }

  async submit(request: FineTuneRequest): Promise<FineTuneJob> {
    const { modelsDir, dataDir, store, boss } = this.options;
    const sources = modelSources(modelsDir, dataDir);
    const base = await findServedPackage(sources, request.baseModel);
    if (!base) throw new UnknownBaseModelError(`no model package "${request.baseModel}"`);
    const id = newJobId();
    // Staged before the row exists: a job a worker can see always has its upload on the shared volume.
    await stageUpload(dataDir, id, request.upload);
    let job: FineTuneJob;
    try {
      job = await store.create({
        id,
        base_model: request.baseModel,
        hyperparameters: request.hyperparameters,
        spec: {
          base_dir: path.resolve(base.dir),
          // Finished packages go under the shared data dir, never into the shipped models.
          models_dir: path.resolve(sources.registeredDir),
          result_model: resultModelId(request.baseModel, id),
          standard_validation: this.options.standardValidation.map((p) => path.resolve(p)),
          worker_threads: this.options.workerThreads ?? 1,
          validation_fraction: request.validationFraction,
          canary_weight: request.canaryWeight,
        },
      });
      await store.addEvent(id, { type: 'created', message: `job created: ${request.upload.files.size} file(s) uploaded, base model ${request.baseModel}` });
      const queueJobId = await boss.send(FINE_TUNE_QUEUE, { jobId: id } satisfies FineTuneMessage);
      if (queueJobId) await store.setQueueJobId(id, queueJobId);
    } catch (error) {
      // Not acknowledged: leave nothing behind that a worker could pick up half-made.
      await store
        .transition(id, ['validating_files'], 'failed', { error: { code: 'internal_error', message: 'the job could not be queued' }, finished: true })
        .catch(() => undefined);
      await removeStagedUpload(dataDir, id).catch(() => undefined);
      throw error;
    }
    return job;
  }

  /**
   * A job no worker holds is cancelled at once; a held one is marked, and its worker (which reads the
   * mark with every lease renewal) stops at a checkpoint and records the cancel.
   */
  async cancel(id: string): Promise<FineTuneJob | undefined> {
    const { store } = this.options;
    const job = await store.get(id);
    if (!job) return undefined;
    if (TERMINAL_STATUSES.includes(job.status)) throw new JobFinishedError(`job ${id} has already ${job.status}`);
    await store.requestCancel(id);
    if (await store.cancelUnheld(id)) {
      await store.addEvent(id, { type: 'cancelled', message: 'job cancelled' });
      await removeStagedUpload(this.options.dataDir, id).catch(() => undefined);
    } else {
      await store.addEvent(id, { type: 'cancel_requested', message: 'cancel requested; the worker saves a checkpoint and stops' });
    }
    return store.get(id);
  }

  /** Called for every NOTIFY `<job id>:<event id>`: reads the event and emits it. */
  async onEventNotification(payload: string): Promise<void> {
    const eventId = Number(payload.slice(payload.lastIndexOf(':') + 1));
    if (!Number.isSafeInteger(eventId)) return;
    const event = await this.options.store.event(eventId);
    if (!event) return;
    this.emitter.emit('event', event);
    if ((TERMINAL_STATUSES as readonly string[]).includes(event.type)) {
      const job = await this.options.store.get(event.job_id);
      if (job) this.emitter.emit('job', job);
    }
  }

  close(): void {
    this.emitter.emit('close');
  }
}
