// Runs fine-tune jobs in the server process: accepts uploads, validates them one at a time, and trains
// one job at a time in a child process (finetune-worker.ts). Everything it knows is in the job store,
// so after a restart it carries on: uploads still `validating_files` are validated again, a job that
// was `running` gets a fresh worker that resumes from the run's last checkpoint. A worker that dies
// (kill -9, out of memory) is restarted the same way, up to `maxCrashes`, then the job fails saying so.
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../audit/logger.ts';
import { sweepIncompletePackages } from '../registry/model-package.ts';
import { findServedPackage, registeredModelsDir, type ModelSources } from '../registry/model-sources.ts';
import { listStagedUploads, readStagedUpload, removeStagedUpload, stageUpload, storeDataset, sweepDatasetTemps } from './dataset-store.ts';
import { type JobStore, TERMINAL_STATUSES, newJobId, type FineTuneJob, type JobEvent, type JobStatus } from './job-store.ts';
import { validateUploadContent, type FineTuneRequest, type UploadLimits } from './upload-validation.ts';
import { isWorkerMessage, type ServerMessage, type WorkerMessage } from './worker-protocol.ts';

export interface JobQueueOptions {
  store: JobStore;
  dataDir: string;
  /** Shipped packages (a base model may be one of them). */
  modelsDir: string;
  /** Where finished packages are written, and where a base model may also be: `<data dir>/models` by default. */
  registeredModelsDir?: string;
  limits: UploadLimits;
  logger: Logger;
  /** Loads a finished package into the serving registry (no restart). */
  registerModel(id: string, packageDir: string): Promise<void>;
  /** Gives a registered model `share` (0–1) of the A/B traffic. */
  setCanary(id: string, share: number): void;
  /** JSONL files of the standard validation split, scored before and after (may be empty). */
  standardValidation: readonly string[];
  /** ORT intra-op threads of the worker (default 1: the server keeps the other cores). */
  workerThreads?: number;
  /** Worker crashes after which a job fails (default 3). */
  maxCrashes?: number;
  /** Wait before restarting a crashed worker (default 1000 ms). */
  retryDelayMs?: number;
  /** How long a worker may take to stop after a cancel or at shutdown before it is killed (default 60 s). */
  stopTimeoutMs?: number;
}

/** The base model named in a request has no package. */
export class UnknownBaseModelError extends Error {
  override readonly name = 'UnknownBaseModelError';
  constructor(readonly baseModel: string) {
    super(`no model package "${baseModel}"`);
  }
}

/** A cancel of a job that has already finished. */
export class JobFinishedError extends Error {
  override readonly name = 'JobFinishedError';
}

const WORKER_ENTRY = fileURLToPath(new URL('./finetune-worker.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

/** Id of the package a job produces: derived from base and job, so every attempt writes the same one. */
export function resultModelId(baseModel: string, jobId: string): string {
  return `${baseModel.slice(0, 44).replace(/[-._]+$/, '')}-ft-${jobId.replace(/^ftjob-/, '').slice(0, 12)}`;
}

interface ActiveWorker {
  jobId: string;
  child: ChildProcess;
  outcome?: WorkerMessage;
  lastStep: number;
  exited: Promise<void>;
  killTimer?: NodeJS.Timeout;
}

export class JobQueue {
  /** 'event' (JobEvent) for every event recorded; 'job' (FineTuneJob) after every status change. */
  readonly emitter = new EventEmitter();
  private active: ActiveWorker | undefined;
  private validating: Promise<void> | undefined;
  private closing = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly store: JobStore;

  private readonly sources: ModelSources;

  constructor(private readonly options: JobQueueOptions) {
    this.store = options.store;
    this.sources = { shippedDir: options.modelsDir, registeredDir: options.registeredModelsDir ?? registeredModelsDir(options.dataDir) };
    this.emitter.setMaxListeners(0);
  }

  // ---- lifecycle ---------------------------------------------------------------------------------

  /** Recovers after a restart (see the file comment), then starts working. */
  async start(): Promise<void> {
    const { store, dataDir, logger } = this.options;
    await sweepDatasetTemps(dataDir);
    await sweepIncompletePackages(this.sources.registeredDir);
    const staged = new Set(await listStagedUploads(dataDir));
    for (const id of staged) {
      // An upload staged just before a crash, whose job row was never written, was never acknowledged.
      if (!store.get(id)) await removeStagedUpload(dataDir, id);
    }
    for (const job of store.withStatus('validating_files')) {
      if (!staged.has(job.id))
        this.finish(job.id, ['validating_files'], 'failed', { code: 'interrupted', message: 'the upload was lost before it was validated; upload it again' });
    }
    for (const job of store.withStatus('running')) {
      await killStaleWorker(job.worker_pid, job.id);
      if (job.cancel_requested) {
        this.finish(job.id, ['running'], 'cancelled', null);
        continue;
      }
      this.record(job.id, {
        type: 'resumed',
        level: 'warn',
        message: `the server restarted during this job; resuming from the last checkpoint (step ${job.progress.step})`,
        data: { step: job.progress.step },
      });
      logger.info('fine-tune job resumed after restart', { job_id: job.id, step: job.progress.step });
    }
    this.kickValidation();
    this.pump();
  }

  /**
   * Stops for a server shutdown: the worker saves a checkpoint and exits, and the job stays
   * `running`, so the next start resumes it. Waits for a validation in progress.
   */
  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    const active = this.active;
    if (active) {
      this.sendTo(active, { type: 'stop', reason: 'shutdown' });
      active.killTimer ??= setTimeout(() => active.child.kill('SIGKILL'), this.options.stopTimeoutMs ?? 60_000);
      await active.exited;
    }
    await this.validating;
    this.emitter.emit('close');
  }

  // ---- requests ----------------------------------------------------------------------------------

  /** Stages the upload durably and creates the job (`validating_files`); validation runs next. */
  async submit(request: FineTuneRequest): Promise<FineTuneJob> {
    const { dataDir, store } = this.options;
    const base = await findServedPackage(this.sources, request.baseModel);
    if (!base) throw new UnknownBaseModelError(request.baseModel);
    const id = newJobId();
    await stageUpload(dataDir, id, request.upload);
    const job = store.create({
      id,
      base_model: request.baseModel,
      hyperparameters: request.hyperparameters,
      spec: {
        base_dir: path.resolve(base.dir),
        // Finished packages go under the data dir, never into the shipped models.
        models_dir: path.resolve(this.sources.registeredDir),
        result_model: resultModelId(request.baseModel, id),
        standard_validation: this.options.standardValidation.map((p) => path.resolve(p)),
        worker_threads: this.options.workerThreads ?? 1,
        validation_fraction: request.validationFraction,
        canary_weight: request.canaryWeight,
      },
    });
    this.record(id, { type: 'created', message: `job created: ${request.upload.files.size} file(s) uploaded, base model ${request.baseModel}` });
    this.kickValidation();
    return job;
  }

  cancel(id: string): FineTuneJob | undefined {
    const job = this.store.get(id);
    if (!job) return undefined;
    if (TERMINAL_STATUSES.includes(job.status)) throw new JobFinishedError(`job ${id} has already ${job.status}`);
    if (job.status === 'validating_files' || job.status === 'queued' || (job.status === 'running' && this.active?.jobId !== id)) {
      this.finish(id, [job.status], 'cancelled', null);
      void removeStagedUpload(this.options.dataDir, id);
      return this.store.get(id);
    }
    if (!job.cancel_requested) {
      this.store.requestCancel(id);
      this.record(id, { type: 'cancel_requested', message: 'cancel requested; the worker saves a checkpoint and stops' });
    }
    const active = this.active!;
    this.sendTo(active, { type: 'stop', reason: 'cancel' });
    active.killTimer ??= setTimeout(() => active.child.kill('SIGKILL'), this.options.stopTimeoutMs ?? 60_000);
    return this.store.get(id);
  }

  /** The running worker's pid (tests kill it). */
  get workerPid(): number | undefined {
    return this.active?.child.pid;
  }

  // ---- validation lane ---------------------------------------------------------------------------

  private kickValidation(): void {
    if (this.validating || this.closing) return;
    this.validating = (async () => {
      for (;;) {
        const next = this.store.withStatus('validating_files')[0];
        if (!next || this.closing) break;
        await this.validate(next).catch((error: unknown) => {
          this.options.logger.error('fine-tune upload validation failed', { job_id: next.id, error: String(error) });
          this.finish(next.id, ['validating_files'], 'failed', {
            code: 'internal_error',
            message: 'the upload could not be validated because of a server error',
          });
        });
      }
    })().finally(() => {
      this.validating = undefined;
    });
  }

  private async validate(job: FineTuneJob): Promise<void> {
    const { dataDir, limits } = this.options;
    const upload = await readStagedUpload(dataDir, job.id);
    const result = await validateUploadContent(upload, limits);
    if (result.warnings.length > 0) {
      this.record(job.id, {
        type: 'validation_warnings',
        level: 'warn',
        message: `${result.warnings.length} warning(s) about the upload`,
        data: { warnings: result.warnings },
      });
    }
    if (!result.ok) {
      const first = result.errors[0]!;
      const where = first.line !== undefined ? `line ${first.line}: ` : '';
      // Removed before the job reads as failed, so a client that sees the failure finds no upload left.
      await removeStagedUpload(dataDir, job.id);
      this.finish(job.id, ['validating_files'], 'failed', {
        code: 'invalid_upload',
        message: `the upload is invalid (${result.errors.length} problem${result.errors.length === 1 ? '' : 's'}; first: ${where}${first.message})`,
        errors: result.errors,
      });
      return;
    }
    const stored = await storeDataset(dataDir, result.jsonl, result.images);
    const moved = this.store.transition(job.id, ['validating_files'], 'queued', { dataset_sha256: stored.sha256 });
    await removeStagedUpload(dataDir, job.id);
    if (!moved) return; // cancelled meanwhile; the stored dataset stays (it is content-addressed)
    this.record(job.id, {
      type: 'validated',
      message: `upload valid: ${result.cases} cases, ${result.images.size} images; dataset ${stored.sha256.slice(0, 12)}…`,
      data: { cases: result.cases, images: result.images.size, dataset_sha256: stored.sha256 },
    });
    this.emitJob(job.id);
    this.pump();
  }

  // ---- training lane -----------------------------------------------------------------------------

  private pump(): void {
    if (this.active || this.closing || this.retryTimer) return;
    const job = this.store.withStatus('running')[0] ?? this.store.withStatus('queued')[0];
    if (!job) return;
    if (job.status === 'queued') {
      if (!this.store.transition(job.id, ['queued'], 'running', { started: true })) {
        this.pump();
        return;
      }
      this.emitJob(job.id);
    }
    this.spawn(job);
  }

  private spawn(job: FineTuneJob): void {
    const child = fork(WORKER_ENTRY, [job.id, this.options.dataDir], {
      execArgv: ['--import', TSX],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      env: { ...process.env, UV_THREADPOOL_SIZE: '2', OMP_NUM_THREADS: '1' },
    });
    let resolveExit!: () => void;
    const active: ActiveWorker = { jobId: job.id, child, lastStep: job.progress.step, exited: new Promise((r) => (resolveExit = r)) };
    this.active = active;
    this.store.recordAttempt(job.id, child.pid ?? 0);
    const attempt = job.attempts + 1;
    this.record(job.id, {
      type: 'worker_started',
      message: `worker started (attempt ${attempt})${job.progress.step > 0 ? `, resuming after step ${job.progress.step}` : ''}`,
      data: { attempt, pid: child.pid ?? null },
    });

    // The worker prints nothing but errors (never patient data); keep the tail for the server log.
    let stderrTail = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderrTail = (stderrTail + chunk.toString('utf8')).slice(-2000);
    });
    child.stdout?.resume();
    child.on('message', (message: unknown) => {
      if (isWorkerMessage(message)) this.onWorkerMessage(active, message);
    });
    child.on('error', (error) => this.options.logger.error('fine-tune worker could not start', { job_id: job.id, error: error.message }));
    child.on('close', (code, signal) => {
      clearTimeout(active.killTimer);
      this.active = undefined;
      void this.onWorkerExit(active, code, signal, stderrTail)
        .catch((error: unknown) => this.options.logger.error('fine-tune job bookkeeping failed', { job_id: job.id, error: String(error) }))
        .finally(() => {
          resolveExit();
          this.pump();
        });
    });
  }

  private onWorkerMessage(active: ActiveWorker, message: WorkerMessage): void {
    const id = active.jobId;
    switch (message.type) {
      case 'event':
        this.record(id, { type: message.event, level: message.level, message: message.message, data: message.data ?? null });
        break;
      case 'progress': {
        active.lastStep = message.step;
        const progress = { step: message.step, total: message.total, reward_mean: message.reward_mean, kl: message.kl };
        this.store.setProgress(id, progress);
        const reward = message.reward_mean === null ? 'n/a' : message.reward_mean.toFixed(3);
        const kl = message.kl === null ? 'n/a' : message.kl.toFixed(4);
        this.record(id, { type: 'metrics', message: `step ${message.step}/${message.total}: reward ${reward}, kl ${kl}`, data: progress });
        break;
      }
      default:
        active.outcome = message;
    }
  }

  private async onWorkerExit(active: ActiveWorker, code: number | null, signal: NodeJS.Signals | null, stderrTail: string): Promise<void> {
    const id = active.jobId;
    const outcome = active.outcome;
    const job = this.store.get(id);
    if (job?.status !== 'running') return;
    if (outcome?.type === 'succeeded') return this.succeed(job, outcome.result_model, outcome.metrics);
    if (outcome?.type === 'failed') return this.finish(id, ['running'], 'failed', { code: 'training_failed', message: outcome.message });
    if (outcome?.type === 'cancelled' || job.cancel_requested) return this.finish(id, ['running'], 'cancelled', null);
    if (outcome?.type === 'paused' || this.closing) {
      this.record(id, { type: 'paused', message: `stopped for a server shutdown after step ${active.lastStep}; resumes on the next start` });
      return;
    }
    // A crash: no outcome, whatever the exit status.
    const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
    const crashes = this.store.recordCrash(id);
    const limit = this.options.maxCrashes ?? 3;
    this.options.logger.warn('fine-tune worker crashed', { job_id: id, how, crashes, step: active.lastStep, stderr: stderrTail.slice(-500) });
    if (crashes >= limit) {
      this.finish(id, ['running'], 'failed', {
        code: 'worker_crashed',
        message: `the training worker crashed ${crashes} times (last: ${how} after step ${active.lastStep}); giving up`,
      });
      return;
    }
    this.record(id, {
      type: 'worker_crashed',
      level: 'warn',
      message: `the worker was ${how} after step ${active.lastStep}; restarting from the last checkpoint (crash ${crashes} of at most ${limit})`,
      data: { crashes, step: active.lastStep },
    });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, this.options.retryDelayMs ?? 1000);
  }

  private async succeed(job: FineTuneJob, resultModel: string, metrics: Record<string, unknown>): Promise<void> {
    const packageDir = path.join(job.spec.models_dir, resultModel);
    try {
      await this.options.registerModel(resultModel, packageDir);
    } catch (error) {
      this.finish(job.id, ['running'], 'failed', {
        code: 'registration_failed',
        message: `the model package was written but could not be loaded: ${(error as Error).message}`,
      });
      return;
    }
    this.record(job.id, { type: 'model_registered', message: `model ${resultModel} is loaded and can be requested by name` });
    if (job.spec.canary_weight !== null) {
      try {
        this.options.setCanary(resultModel, job.spec.canary_weight);
        this.record(job.id, {
          type: 'canary',
          message: `model ${resultModel} receives ${(job.spec.canary_weight * 100).toFixed(1)}% of A/B traffic`,
          data: { share: job.spec.canary_weight },
        });
      } catch (error) {
        this.record(job.id, { type: 'canary_failed', level: 'warn', message: `the canary could not be added to the A/B table: ${(error as Error).message}` });
      }
    }
    const progress = { ...job.progress, step: job.progress.total };
    this.finish(job.id, ['running'], 'succeeded', null, { result_model: resultModel, metrics, progress });
  }

  // ---- bookkeeping -------------------------------------------------------------------------------

  private finish(
    id: string,
    from: JobStatus[],
    to: 'succeeded' | 'failed' | 'cancelled',
    error: FineTuneJob['error'],
    extra: { result_model?: string; metrics?: Record<string, unknown>; progress?: FineTuneJob['progress'] } = {},
  ): void {
    if (!this.store.transition(id, from, to, { error, finished: true, worker_pid: null, ...extra })) return;
    const message = to === 'succeeded' ? `job succeeded: model ${extra.result_model}` : to === 'cancelled' ? 'job cancelled' : `job failed: ${error?.message}`;
    this.record(id, { type: to, level: to === 'failed' ? 'error' : 'info', message, data: error ? { code: error.code } : null });
    this.options.logger.info('fine-tune job finished', { job_id: id, status: to, ...(error ? { code: error.code } : {}) });
    this.emitJob(id);
  }

  private record(id: string, event: { type: string; message: string; level?: JobEvent['level']; data?: Record<string, unknown> | null }): void {
    const stored = this.store.addEvent(id, event);
    this.emitter.emit('event', stored);
  }

  private emitJob(id: string): void {
    const job = this.store.get(id);
    if (job) this.emitter.emit('job', job);
  }

  private sendTo(active: ActiveWorker, message: ServerMessage): void {
    if (active.child.connected) active.child.send(message);
  }
}

/**
 * After a server crash its worker may outlive it for a moment (it exits when it notices the lost
 * IPC channel). Two workers must never write one run folder, so a live one is killed first — only if
 * its command line shows it is this job's worker (a recycled pid is left alone).
 */
async function killStaleWorker(pid: number | null, jobId: string): Promise<void> {
  if (!pid) return;
  let cmdline: string;
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // gone (or no /proc: nothing safe to do)
  }
  if (!cmdline.includes('finetune-worker') || !cmdline.includes(jobId)) return;
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let i = 0; i < 100; i++) {
    try {
      // A zombie (dead, not yet reaped by init) has an empty command line: it is gone for our purposes.
      if (readFileSync(`/proc/${pid}/cmdline`).length === 0) return;
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
