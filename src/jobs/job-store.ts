// Fine-tune jobs and their events, durable in SQLite (<dataDir>/fine-tunes.sqlite, WAL). The server
// process is the only writer; the worker child opens the same file to read its job's spec. Status
// changes are conditional UPDATEs (`WHERE status IN (...)`), so a late message from a worker cannot
// resurrect a job that was cancelled or already finished.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { openSqlite, type SqliteDatabase } from '../feedback/sqlite.ts';
import type { FineTuneHyperparameters } from './hyperparameters.ts';

export const JOB_DB_FILE = 'fine-tunes.sqlite';

export const JOB_STATUSES = ['validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export interface JobProgress {
  step: number;
  total: number;
  reward_mean: number | null;
  kl: number | null;
}

export interface JobError {
  /** Stable: `invalid_upload`, `worker_crashed`, `training_failed`, `registration_failed`, `interrupted`. */
  code: string;
  message: string;
  /** Per-line problems of an invalid upload, e.g. {line: 3, message: 'missing required field "answer"'}. */
  errors?: { file?: string; line?: number; message: string }[];
}

/** What the worker needs besides the hyperparameters; fixed when the job is created. */
export interface JobSpec {
  /** Absolute path of the base model's package. */
  base_dir: string;
  /** Absolute directory the new package is written into (the registered models under the data dir). */
  models_dir: string;
  /** Id the new package will get (deterministic, so a re-run after a crash finds its own package). */
  result_model: string;
  /** JSONL files of the standard validation split, absolute. */
  standard_validation: string[];
  worker_threads: number;
  validation_fraction: number;
  canary_weight: number | null;
}

export interface FineTuneJob {
  id: string;
  status: JobStatus;
  base_model: string;
  dataset_sha256: string | null;
  hyperparameters: FineTuneHyperparameters;
  spec: JobSpec;
  progress: JobProgress;
  /** Before/after metrics, once the job has succeeded. */
  metrics: Record<string, unknown> | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  result_model: string | null;
  error: JobError | null;
  /** Worker processes started for this job (a crash and a server restart each add one). */
  attempts: number;
  /** Worker crashes seen; past the queue's limit the job fails. */
  crashes: number;
  cancel_requested: boolean;
  worker_pid: number | null;
}

export interface JobEvent {
  id: number;
  job_id: string;
  created_at: string;
  level: 'info' | 'warn' | 'error';
  type: string;
  message: string;
  data: Record<string, unknown> | null;
}

interface JobRow {
  id: string;
  status: string;
  base_model: string;
  dataset_sha256: string | null;
  hyperparameters: string;
  spec: string;
  progress: string;
  metrics: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  result_model: string | null;
  error: string | null;
  attempts: number;
  crashes: number;
  cancel_requested: number;
  worker_pid: number | null;
}

interface EventRow {
  id: number;
  job_id: string;
  created_at: string;
  level: string;
  type: string;
  message: string;
  data: string | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS fine_tune_jobs (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  status TEXT NOT NULL CHECK (status IN ('validating_files','queued','running','succeeded','failed','cancelled')),
  base_model TEXT NOT NULL,
  dataset_sha256 TEXT,
  hyperparameters TEXT NOT NULL,
  spec TEXT NOT NULL,
  progress TEXT NOT NULL,
  metrics TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  result_model TEXT,
  error TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  crashes INTEGER NOT NULL DEFAULT 0,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  worker_pid INTEGER
);
CREATE INDEX IF NOT EXISTS fine_tune_jobs_status ON fine_tune_jobs (status, seq);
CREATE TABLE IF NOT EXISTS fine_tune_events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL REFERENCES fine_tune_jobs (id),
  created_at TEXT NOT NULL,
  level TEXT NOT NULL,
  type TEXT NOT NULL,
  message TEXT NOT NULL,
  data TEXT
);
CREATE INDEX IF NOT EXISTS fine_tune_events_job ON fine_tune_events (job_id, id);
CREATE TABLE IF NOT EXISTS fine_tune_checkpoints (
  job_id TEXT NOT NULL REFERENCES fine_tune_jobs (id),
  step INTEGER NOT NULL,
  worker TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (job_id, step)
);
`;

/** A checkpoint a worker saved (the weights live in the run folder; this is who wrote which step when). */
export interface CheckpointRecord {
  step: number;
  worker: string;
  created_at: string;
}

export function newJobId(): string {
  return `ftjob-${randomBytes(8).toString('hex')}`;
}

export const JOB_ID_PATTERN = /^ftjob-[0-9a-f]{16}$/;

export class JobStore {
  private constructor(
    private readonly db: SqliteDatabase,
    readonly file: string,
  ) {}

  static open(dataDir: string): JobStore {
    mkdirSync(dataDir, { recursive: true });
    const file = path.join(dataDir, JOB_DB_FILE);
    const db = openSqlite(file);
    db.exec(SCHEMA);
    return new JobStore(db, file);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  create(input: { id: string; base_model: string; hyperparameters: FineTuneHyperparameters; spec: JobSpec; now?: Date }): FineTuneJob {
    const now = (input.now ?? new Date()).toISOString();
    const progress: JobProgress = { step: 0, total: input.hyperparameters.max_steps, reward_mean: null, kl: null };
    this.db
      .prepare(
        `INSERT INTO fine_tune_jobs (id, status, base_model, hyperparameters, spec, progress, created_at)
         VALUES (?, 'validating_files', ?, ?, ?, ?, ?)`,
      )
      .run(input.id, input.base_model, JSON.stringify(input.hyperparameters), JSON.stringify(input.spec), JSON.stringify(progress), now);
    return this.get(input.id)!;
  }

  get(id: string): FineTuneJob | undefined {
    const row = this.db.prepare<JobRow>('SELECT * FROM fine_tune_jobs WHERE id = ?').get(id);
    return row ? fromRow(row) : undefined;
  }

  /** Newest first, OpenAI-style pagination: `after` is the id of the last job of the previous page. */
  list(options: { limit: number; after?: string }): { jobs: FineTuneJob[]; hasMore: boolean } {
    const afterSeq =
      options.after !== undefined ? this.db.prepare<{ seq: number }>('SELECT seq FROM fine_tune_jobs WHERE id = ?').get(options.after)?.seq : undefined;
    const rows =
      afterSeq !== undefined
        ? this.db.prepare<JobRow>('SELECT * FROM fine_tune_jobs WHERE seq < ? ORDER BY seq DESC LIMIT ?').all(afterSeq, options.limit + 1)
        : this.db.prepare<JobRow>('SELECT * FROM fine_tune_jobs ORDER BY seq DESC LIMIT ?').all(options.limit + 1);
    return { jobs: rows.slice(0, options.limit).map(fromRow), hasMore: rows.length > options.limit };
  }

  /** Jobs in `status`, oldest first. */
  withStatus(status: JobStatus): FineTuneJob[] {
    return this.db.prepare<JobRow>('SELECT * FROM fine_tune_jobs WHERE status = ? ORDER BY seq').all(status).map(fromRow);
  }

  /**
   * Moves a job from one of `from` to `to`, setting the given columns; returns false (changing
   * nothing) when the job is not in one of `from` any more.
   */
  transition(
    id: string,
    from: readonly JobStatus[],
    to: JobStatus,
    set: Partial<Pick<FineTuneJob, 'dataset_sha256' | 'metrics' | 'result_model' | 'error' | 'worker_pid' | 'progress'>> & {
      started?: boolean;
      finished?: boolean;
    } = {},
    now = new Date(),
  ): boolean {
    const columns: string[] = ['status = ?'];
    const values: (string | number | null)[] = [to];
    if (set.dataset_sha256 !== undefined) {
      columns.push('dataset_sha256 = ?');
      values.push(set.dataset_sha256);
    }
    if (set.metrics !== undefined) {
      columns.push('metrics = ?');
      values.push(set.metrics === null ? null : JSON.stringify(set.metrics));
    }
    if (set.result_model !== undefined) {
      columns.push('result_model = ?');
      values.push(set.result_model);
    }
    if (set.error !== undefined) {
      columns.push('error = ?');
      values.push(set.error === null ? null : JSON.stringify(set.error));
    }
    if (set.worker_pid !== undefined) {
      columns.push('worker_pid = ?');
      values.push(set.worker_pid);
    }
    if (set.progress !== undefined) {
      columns.push('progress = ?');
      values.push(JSON.stringify(set.progress));
    }
    if (set.started) {
      columns.push('started_at = COALESCE(started_at, ?)');
      values.push(now.toISOString());
    }
    if (set.finished) {
      columns.push('finished_at = ?');
      values.push(now.toISOString());
    }
    const placeholders = from.map(() => '?').join(', ');
    const result = this.db.prepare(`UPDATE fine_tune_jobs SET ${columns.join(', ')} WHERE id = ? AND status IN (${placeholders})`).run(...values, id, ...from);
    return result.changes === 1;
  }

  setProgress(id: string, progress: JobProgress): void {
    this.db.prepare(`UPDATE fine_tune_jobs SET progress = ? WHERE id = ? AND status = 'running'`).run(JSON.stringify(progress), id);
  }

  /** A worker was started for the job. */
  recordAttempt(id: string, pid: number): void {
    this.db.prepare('UPDATE fine_tune_jobs SET attempts = attempts + 1, worker_pid = ? WHERE id = ?').run(pid, id);
  }

  /** Returns the crash count after this one. */
  recordCrash(id: string): number {
    this.db.prepare('UPDATE fine_tune_jobs SET crashes = crashes + 1, worker_pid = NULL WHERE id = ?').run(id);
    return this.get(id)?.crashes ?? 0;
  }

  requestCancel(id: string): void {
    this.db.prepare('UPDATE fine_tune_jobs SET cancel_requested = 1 WHERE id = ?').run(id);
  }

  addEvent(
    jobId: string,
    event: { level?: JobEvent['level']; type: string; message: string; data?: Record<string, unknown> | null },
    now = new Date(),
  ): JobEvent {
    const result = this.db
      .prepare('INSERT INTO fine_tune_events (job_id, created_at, level, type, message, data) VALUES (?, ?, ?, ?, ?, ?)')
      .run(jobId, now.toISOString(), event.level ?? 'info', event.type, event.message, event.data ? JSON.stringify(event.data) : null);
    return {
      id: Number(result.lastInsertRowid),
      job_id: jobId,
      created_at: now.toISOString(),
      level: event.level ?? 'info',
      type: event.type,
      message: event.message,
      data: event.data ?? null,
    };
  }

  recordCheckpoint(jobId: string, step: number, worker: string, now = new Date()): void {
    this.db
      .prepare(
        'INSERT INTO fine_tune_checkpoints (job_id, step, worker, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (job_id, step) DO UPDATE SET worker = excluded.worker, created_at = excluded.created_at',
      )
      .run(jobId, step, worker, now.toISOString());
  }

  /** Checkpoints of a job, oldest step first. */
  checkpoints(jobId: string): CheckpointRecord[] {
    return this.db.prepare<CheckpointRecord>('SELECT step, worker, created_at FROM fine_tune_checkpoints WHERE job_id = ? ORDER BY step').all(jobId);
  }

  /** Events of a job in order, those with id > `afterId`. */
  events(jobId: string, options: { afterId?: number; limit?: number } = {}): JobEvent[] {
    return this.db
      .prepare<EventRow>('SELECT * FROM fine_tune_events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?')
      .all(jobId, options.afterId ?? 0, options.limit ?? 10_000)
      .map((r) => ({ ...r, level: r.level as JobEvent['level'], data: r.data === null ? null : (JSON.parse(r.data) as Record<string, unknown>) }));
  }
}

function fromRow(row: JobRow): FineTuneJob {
  return {
    id: row.id,
    status: row.status as JobStatus,
    base_model: row.base_model,
    dataset_sha256: row.dataset_sha256,
    hyperparameters: JSON.parse(row.hyperparameters) as FineTuneHyperparameters,
    spec: JSON.parse(row.spec) as JobSpec,
    progress: JSON.parse(row.progress) as JobProgress,
    metrics: row.metrics === null ? null : (JSON.parse(row.metrics) as Record<string, unknown>),
    created_at: row.created_at,
    started_at: row.started_at,
    finished_at: row.finished_at,
    result_model: row.result_model,
    error: row.error === null ? null : (JSON.parse(row.error) as JobError),
    attempts: row.attempts,
    crashes: row.crashes,
    cancel_requested: row.cancel_requested === 1,
    worker_pid: row.worker_pid,
  };
}

/** The job as the API shows it (OpenAI fine-tuning job shape, plus our before/after metrics). */
export function toJobJson(job: FineTuneJob): Record<string, unknown> {
  return {
    object: 'fine_tuning.job',
    id: job.id,
    status: job.status,
    base_model: job.base_model,
    dataset_sha256: job.dataset_sha256,
    hyperparameters: job.hyperparameters,
    validation_fraction: job.spec.validation_fraction,
    canary_weight: job.spec.canary_weight,
    progress: job.progress,
    metrics: job.metrics,
    created_at: job.created_at,
    started_at: job.started_at,
    finished_at: job.finished_at,
    result_model: job.result_model,
    error: job.error,
    attempts: job.attempts,
    crashes: job.crashes,
    cancel_requested: job.cancel_requested,
  };
}
