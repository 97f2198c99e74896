// A trainer worker of a cluster deployment (`npm run worker`): takes fine-tune jobs from the pg-boss
// queue, validates the staged upload, trains in a child process (finetune-worker.ts, the same code
// the embedded server runs) and records everything in Postgres. Several may run, on any machines
// that share CLINVQA_DATA_DIR.
//
// While it holds a job it renews the job's lease every second (and reads the cancel mark with it).
// A worker that dies stops renewing; after CLINVQA_JOB_LEASE_S any other worker's reaper breaks the
// lease and fails the pg-boss job, pg-boss hands it to a free worker, and that one resumes from the
// run's last checkpoint on the shared volume. A worker that finds its lease gone stops its child at
// once: two workers never write one run folder knowingly.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type PgBoss from 'pg-boss';
import type { Logger } from '../audit/logger.ts';
import { announceModel } from '../cluster/served-models.ts';
import { readStagedUpload, removeStagedUpload, runDirOf, storeDataset } from './dataset-store.ts';
import { FINE_TUNE_QUEUE, type FineTuneMessage } from './fine-tune-queue.ts';
import type { NewJobEvent } from './job-repository.ts';
import type { FineTuneJob, JobStatus } from './job-store.ts';
import type { PostgresJobStore } from './job-store.postgres.ts';
import { validateUploadContent, type UploadLimits } from './upload-validation.ts';
import { isWorkerMessage, type ServerMessage, type WorkerMessage } from './worker-protocol.ts';
import type { Pool } from '../store/postgres.ts';

const WORKER_ENTRY = fileURLToPath(new URL('./finetune-worker.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

export interface ClusterWorkerOptions {
  pool: Pool;
  store: PostgresJobStore;
  boss: PgBoss;
  dataDir: string;
  limits: UploadLimits;
  logger: Logger;
  /** Names this worker in leases and checkpoint records. */
  instanceId: string;
  leaseS: number;
  /** Crashes (lapsed leases, dead children) after which a job fails (default 3). */
  maxCrashes?: number;
  /** How often the lease is renewed and the cancel mark read (default 1000 ms, at most a third of the lease). */
  heartbeatMs?: number;
  /** How long a child may take to stop at a checkpoint before it is killed (default 60 s). */
  stopTimeoutMs?: number;
}

interface Running {
  jobId: string;
  child: ChildProcess;
  stopSent: boolean;
  killTimer?: NodeJS.Timeout;
}

export class ClusterWorker {
  private running: Running | undefined;
  private reaper: NodeJS.Timeout | undefined;
  private closing = false;
  private idle: Promise<void> = Promise.resolve();

  constructor(private readonly options: ClusterWorkerOptions) {}

  async start(): Promise<void> {
    const { boss, leaseS } = this.options;
    await boss.work<FineTuneMessage>(FINE_TUNE_QUEUE, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async ([job]) => {
      if (!job || this.closing) throw new Error('worker is stopping');
      let done!: () => void;
      this.idle = new Promise((r) => (done = r));
      try {
        await this.runJob(job.data.jobId, job.id);
      } finally {
        done();
      }
    });
    const every = Math.max(500, Math.min(5000, (leaseS * 1000) / 4));
    this.reaper = setInterval(
      () => void this.reap().catch((error: unknown) => this.options.logger.warn('lease check failed', { error: String(error) })),
      every,
    );
    this.reaper.unref();
  }

  /** The pid of the child training right now (tests kill it). */
  get childPid(): number | undefined {
    return this.running?.child.pid;
  }

  get currentJob(): string | undefined {
    return this.running?.jobId;
  }

  /** Stops taking jobs; a job in training is stopped at a checkpoint and handed back to the queue. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.reaper);
    const running = this.running;
    if (running) this.stopChild(running, 'shutdown');
    await this.options.boss.offWork(FINE_TUNE_QUEUE).catch(() => undefined);
    await this.idle;
  }

  /** Breaks the leases of workers that went silent and hands their jobs back to pg-boss. */
  async reap(): Promise<void> {
    const { store, boss, logger } = this.options;
    for (const lapsed of await store.expiredLeases()) {
      if (!(await store.breakLease(lapsed.id, lapsed.lease_owner))) continue;
      const job = await store.get(lapsed.id);
      if (!job) continue;
      logger.warn('fine-tune worker went silent; its job is handed to another worker', { job_id: job.id, step: job.progress.step, crashes: job.crashes });
      if (job.crashes >= (this.options.maxCrashes ?? 3)) {
        await this.finish(job.id, [job.status], 'failed', {
          code: 'worker_crashed',
          message: `the training worker stopped answering ${job.crashes} times (last after step ${job.progress.step}); giving up`,
        });
        if (lapsed.queue_job_id) await boss.complete(FINE_TUNE_QUEUE, lapsed.queue_job_id).catch(() => undefined);
        continue;
      }
      await this.event(job.id, {
        type: 'worker_lost',
        level: 'warn',
        message: `the worker holding this job was silent for ${this.options.leaseS} s after step ${job.progress.step}; another worker resumes it from the last checkpoint`,
        data: { step: job.progress.step, crashes: job.crashes },
      });
      if (lapsed.queue_job_id) await boss.fail(FINE_TUNE_QUEUE, lapsed.queue_job_id, { reason: 'lease lapsed' });
    }
    // A job nobody holds whose queue entry is gone or finished (e.g. completed by a worker that had just
    // lost its lease) would wait forever: queue it again. Two reapers may both do it; the lease still
    // lets only one worker run it.
    for (const stranded of await store.unheldJobs(this.options.leaseS)) {
      const entry = stranded.queue_job_id ? await boss.getJobById(FINE_TUNE_QUEUE, stranded.queue_job_id) : null;
      if (entry && ['created', 'retry', 'active'].includes(entry.state)) continue;
      const queueJobId = await boss.send(FINE_TUNE_QUEUE, { jobId: stranded.id } satisfies FineTuneMessage);
      if (queueJobId) await store.setQueueJobId(stranded.id, queueJobId);
      logger.warn('fine-tune job had no queue entry; queued again', { job_id: stranded.id });
    }
  }

  private async runJob(jobId: string, queueJobId: string): Promise<void> {
    const { store, instanceId, leaseS, logger } = this.options;
    const claimed = await store.claim(jobId, instanceId, leaseS, process.pid);
    if (!claimed) return; // finished, cancelled, or held by a live worker: nothing to do
    await store.setQueueJobId(jobId, queueJobId);
    let job: FineTuneJob = claimed;
    try {
      if (job.cancel_requested) return void (await this.finish(jobId, [job.status], 'cancelled', null));
      if (job.status === 'validating_files') {
        const next = await this.validate(job);
        if (!next) return;
        job = next;
      }
      if (job.status === 'queued') {
        if (!(await store.transition(jobId, ['queued'], 'running', { started: true }))) return;
        job = (await store.get(jobId))!;
      }
      await this.train(job);
    } catch (error) {
      logger.error('fine-tune job attempt failed', { job_id: jobId, error: error instanceof Error ? error.message : String(error) });
      // Give the job back: the lease is released so the retry pg-boss makes can claim it at once.
      await store.releaseLease(jobId, instanceId).catch(() => undefined);
      throw error;
    }
  }

  private async validate(job: FineTuneJob): Promise<FineTuneJob | undefined> {
    const { store, dataDir, limits } = this.options;
    let upload: Awaited<ReturnType<typeof readStagedUpload>>;
    try {
      upload = await readStagedUpload(dataDir, job.id);
    } catch {
      await this.finish(job.id, ['validating_files'], 'failed', {
        code: 'interrupted',
        message: 'the upload was lost before it was validated; upload it again',
      });
      return undefined;
    }
    const result = await validateUploadContent(upload, limits);
    if (result.warnings.length > 0)
      await this.event(job.id, {
        type: 'validation_warnings',
        level: 'warn',
        message: `${result.warnings.length} warning(s) about the upload`,
        data: { warnings: result.warnings },
      });
    if (!result.ok) {
      const first = result.errors[0]!;
      const where = first.line !== undefined ? `line ${first.line}: ` : '';
      await this.finish(job.id, ['validating_files'], 'failed', {
        code: 'invalid_upload',
        message: `the upload is invalid (${result.errors.length} problem${result.errors.length === 1 ? '' : 's'}; first: ${where}${first.message})`,
        errors: result.errors,
      });
      await removeStagedUpload(dataDir, job.id);
      return undefined;
    }
    const stored = await storeDataset(dataDir, result.jsonl, result.images);
    const moved = await store.transition(job.id, ['validating_files'], 'queued', { dataset_sha256: stored.sha256 });
    await removeStagedUpload(dataDir, job.id);
    if (!moved) return undefined;
    await this.event(job.id, {
      type: 'validated',
      message: `upload valid: ${result.cases} cases, ${result.images.size} images; dataset ${stored.sha256.slice(0, 12)}…`,
      data: { cases: result.cases, images: result.images.size, dataset_sha256: stored.sha256 },
    });
    return store.get(job.id);
  }

  private async train(job: FineTuneJob): Promise<void> {
    const { store, dataDir, instanceId, leaseS, logger } = this.options;
    const runDir = runDirOf(dataDir, job.id);
    await mkdir(runDir, { recursive: true });
    const jobFile = path.join(runDir, `job-${process.pid}.json`);
    await writeFile(jobFile, JSON.stringify(job));
    const child = fork(WORKER_ENTRY, [job.id, dataDir, jobFile], {
      execArgv: ['--import', TSX],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, UV_THREADPOOL_SIZE: '2', OMP_NUM_THREADS: '1' },
    });
    const running: Running = { jobId: job.id, child, stopSent: false };
    this.running = running;
    await this.event(job.id, {
      type: 'worker_started',
      message: `worker ${instanceId} started (attempt ${job.attempts})${job.progress.step > 0 ? `, resuming after step ${job.progress.step}` : ''}`,
      data: { attempt: job.attempts, worker: instanceId },
    });

    let stderrTail = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderrTail = (stderrTail + chunk.toString('utf8')).slice(-2000);
    });
    child.stdout?.resume();
    let outcome: WorkerMessage | undefined;
    let lastStep = job.progress.step;
    let lostLease = false;
    // Messages are written in order: one chain, so an event never overtakes the one before it.
    let writes: Promise<unknown> = Promise.resolve();
    const enqueue = (work: () => Promise<unknown>) => {
      writes = writes.then(work).catch((error: unknown) => logger.warn('recording a worker message failed', { job_id: job.id, error: String(error) }));
    };
    child.on('message', (message: unknown) => {
      if (!isWorkerMessage(message)) return;
      if (message.type === 'event') {
        enqueue(() => this.event(job.id, { type: message.event, level: message.level, message: message.message, data: message.data ?? null }));
      } else if (message.type === 'progress') {
        lastStep = message.step;
        const progress = { step: message.step, total: message.total, reward_mean: message.reward_mean, kl: message.kl };
        const checkpointed = message.step % job.hyperparameters.checkpoint_every === 0 || message.step === message.total;
        enqueue(async () => {
          await store.setProgress(job.id, progress);
          if (checkpointed) await store.recordCheckpoint(job.id, message.step, instanceId);
          const reward = message.reward_mean === null ? 'n/a' : message.reward_mean.toFixed(3);
          const kl = message.kl === null ? 'n/a' : message.kl.toFixed(4);
          await this.event(job.id, { type: 'metrics', message: `step ${message.step}/${message.total}: reward ${reward}, kl ${kl}`, data: progress });
        });
      } else {
        outcome = message;
      }
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('close', (code, signal) => resolve({ code, signal })),
    );

    const heartbeatMs = Math.min(this.options.heartbeatMs ?? 1000, (leaseS * 1000) / 3);
    const heartbeat = setInterval(() => {
      void store.renewLease(job.id, instanceId, leaseS).then(
        ({ held, cancelRequested }) => {
          if (!held) {
            lostLease = true;
            logger.warn('lease on the fine-tune job lost; stopping its training here', { job_id: job.id });
            child.kill('SIGKILL');
          } else if (cancelRequested) this.stopChild(running, 'cancel');
        },
        // The database is away: keep training; the lease decides later whether the job is still ours.
        () => undefined,
      );
    }, heartbeatMs);

    const { code, signal } = await exited;
    clearInterval(heartbeat);
    clearTimeout(running.killTimer);
    this.running = undefined;
    await writes;
    await rm(jobFile, { force: true });
    if (lostLease) return;

    const current = await store.get(job.id);
    if (current?.status !== 'running') return;
    if (outcome?.type === 'succeeded') return this.succeed(current, outcome.result_model, outcome.metrics);
    if (outcome?.type === 'failed') return void (await this.finish(job.id, ['running'], 'failed', { code: 'training_failed', message: outcome.message }));
    if (outcome?.type === 'cancelled' || current.cancel_requested) return void (await this.finish(job.id, ['running'], 'cancelled', null));
    if (outcome?.type === 'paused' || this.closing) {
      await this.event(job.id, { type: 'paused', message: `worker ${instanceId} stopped after step ${lastStep}; another worker resumes from the checkpoint` });
      throw new Error('worker shutting down');
    }
    const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
    const crashes = await store.recordCrash(job.id);
    logger.warn('fine-tune training process crashed', { job_id: job.id, how, crashes, step: lastStep, stderr: stderrTail.slice(-500) });
    if (crashes >= (this.options.maxCrashes ?? 3)) {
      await this.finish(job.id, ['running'], 'failed', {
        code: 'worker_crashed',
        message: `the training worker crashed ${crashes} times (last: ${how} after step ${lastStep}); giving up`,
      });
      return;
    }
    await this.event(job.id, {
      type: 'worker_crashed',
      level: 'warn',
      message: `the training process was ${how} after step ${lastStep}; restarting from the last checkpoint`,
      data: { crashes, step: lastStep },
    });
    throw new Error(`training process ${how}`);
  }

  private async succeed(job: FineTuneJob, resultModel: string, metrics: Record<string, unknown>): Promise<void> {
    const packageDir = path.join(job.spec.models_dir, resultModel);
    // Announced before the job is marked done, so a client that sees `succeeded` finds the model being loaded.
    await announceModel(this.options.pool, { id: resultModel, package_dir: packageDir, state: 'loaded' });
    await this.event(job.id, { type: 'model_registered', message: `model ${resultModel} is announced to every server replica` });
    const progress = { ...job.progress, step: job.progress.total };
    await this.finish(job.id, ['running'], 'succeeded', null, { result_model: resultModel, metrics, progress });
  }

  private async finish(
    id: string,
    from: JobStatus[],
    to: 'succeeded' | 'failed' | 'cancelled',
    error: FineTuneJob['error'],
    extra: { result_model?: string; metrics?: Record<string, unknown>; progress?: FineTuneJob['progress'] } = {},
  ): Promise<void> {
    if (!(await this.options.store.transition(id, from, to, { error, finished: true, worker_pid: null, ...extra }))) return;
    const message = to === 'succeeded' ? `job succeeded: model ${extra.result_model}` : to === 'cancelled' ? 'job cancelled' : `job failed: ${error?.message}`;
    await this.event(id, { type: to, level: to === 'failed' ? 'error' : 'info', message, data: error ? { code: error.code } : null });
    this.options.logger.info('fine-tune job finished', { job_id: id, status: to, ...(error ? { code: error.code } : {}) });
  }

  private async event(id: string, event: NewJobEvent): Promise<void> {
    await this.options.store.addEvent(id, event);
  }

  private stopChild(running: Running, reason: ServerMessage['reason']): void {
    if (running.stopSent) return;
    running.stopSent = true;
    if (running.child.connected) running.child.send({ type: 'stop', reason } satisfies ServerMessage);
    running.killTimer = setTimeout(() => running.child.kill('SIGKILL'), this.options.stopTimeoutMs ?? 60_000);
  }
}
