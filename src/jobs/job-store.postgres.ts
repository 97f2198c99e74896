// Fine-tune jobs, their events and checkpoints in the shared Postgres database (cluster mode). Same
// contract as the SQLite JobStore (the shared suite in test/jobs/job-repository.test.ts runs both),
// plus what several worker processes need: a lease per job (owner + expiry, renewed while training)
// so that a worker that died is noticed, and a NOTIFY per event so every replica can stream it.
import type { FineTuneHyperparameters } from './hyperparameters.ts';
import type { JobColumns, JobRepository, NewJobEvent } from './job-repository.ts';
import type { CheckpointRecord, FineTuneJob, JobError, JobEvent, JobProgress, JobSpec, JobStatus } from './job-store.ts';
import { query, type Pool } from '../store/postgres.ts';

/** NOTIFY channel: payload `<job id>:<event id>` for every event recorded. */
export const JOB_EVENTS_CHANNEL = 'clinvqa_job_events';
const ACTIVE: readonly JobStatus[] = ['validating_files', 'queued', 'running'];

interface JobRow {
  id: string;
  status: JobStatus;
  base_model: string;
  dataset_sha256: string | null;
  hyperparameters: FineTuneHyperparameters;
  spec: JobSpec;
  progress: JobProgress;
  metrics: Record<string, unknown> | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  result_model: string | null;
  error: JobError | null;
  attempts: number;
  crashes: number;
  cancel_requested: boolean;
  worker_pid: number | null;
}

interface EventRow {
  id: string;
  job_id: string;
  created_at: Date;
  level: JobEvent['level'];
  type: string;
  message: string;
  data: Record<string, unknown> | null;
}

/** A job whose worker has gone silent past its lease. */
export interface ExpiredLease {
  id: string;
  lease_owner: string;
  queue_job_id: string | null;
}

export class PostgresJobStore implements JobRepository {
  constructor(private readonly pool: Pool) {}

  async create(input: { id: string; base_model: string; hyperparameters: FineTuneHyperparameters; spec: JobSpec; now?: Date }): Promise<FineTuneJob> {
    const progress: JobProgress = { step: 0, total: input.hyperparameters.max_steps, reward_mean: null, kl: null };
    const { rows } = await query<JobRow>(
      this.pool,
      `INSERT INTO fine_tune_jobs (id, status, base_model, hyperparameters, spec, progress, created_at)
       VALUES ($1, 'validating_files', $2, $3, $4, $5, $6) RETURNING *`,
      [input.id, input.base_model, JSON.stringify(input.hyperparameters), JSON.stringify(input.spec), JSON.stringify(progress), input.now ?? new Date()],
    );
    return fromRow(rows[0]!);
  }

  async get(id: string): Promise<FineTuneJob | undefined> {
    const { rows } = await query<JobRow>(this.pool, 'SELECT * FROM fine_tune_jobs WHERE id = $1', [id]);
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  async list(options: { limit: number; after?: string }): Promise<{ jobs: FineTuneJob[]; hasMore: boolean }> {
    const { rows } =
      options.after !== undefined
        ? await query<JobRow>(this.pool, 'SELECT * FROM fine_tune_jobs WHERE seq < (SELECT seq FROM fine_tune_jobs WHERE id = $1) ORDER BY seq DESC LIMIT $2', [
            options.after,
            options.limit + 1,
          ])
        : await query<JobRow>(this.pool, 'SELECT * FROM fine_tune_jobs ORDER BY seq DESC LIMIT $1', [options.limit + 1]);
    // An unknown `after` id starts from the newest, as the SQLite store does.
    if (options.after !== undefined && rows.length === 0 && !(await this.get(options.after))) return this.list({ limit: options.limit });
    return { jobs: rows.slice(0, options.limit).map(fromRow), hasMore: rows.length > options.limit };
  }

  async withStatus(status: JobStatus): Promise<FineTuneJob[]> {
    const { rows } = await query<JobRow>(this.pool, 'SELECT * FROM fine_tune_jobs WHERE status = $1 ORDER BY seq', [status]);
    return rows.map(fromRow);
  }

  async transition(id: string, from: readonly JobStatus[], to: JobStatus, set: JobColumns = {}, now = new Date()): Promise<boolean> {
    const columns = ['status = $1'];
    const values: unknown[] = [to];
    const add = (column: string, value: unknown) => {
      values.push(value);
      columns.push(`${column} = $${values.length}`);
    };
    if (set.dataset_sha256 !== undefined) add('dataset_sha256', set.dataset_sha256);
    if (set.metrics !== undefined) add('metrics', set.metrics === null ? null : JSON.stringify(set.metrics));
    if (set.result_model !== undefined) add('result_model', set.result_model);
    if (set.error !== undefined) add('error', set.error === null ? null : JSON.stringify(set.error));
    if (set.worker_pid !== undefined) add('worker_pid', set.worker_pid);
    if (set.progress !== undefined) add('progress', JSON.stringify(set.progress));
    if (set.started) {
      values.push(now);
      columns.push(`started_at = COALESCE(started_at, $${values.length})`);
    }
    if (set.finished) add('finished_at', now);
    // A finished job holds no lease any more.
    if (to === 'succeeded' || to === 'failed' || to === 'cancelled') columns.push('lease_owner = NULL', 'lease_expires_at = NULL');
    values.push(id, [...from]);
    const result = await query(
      this.pool,
      `UPDATE fine_tune_jobs SET ${columns.join(', ')} WHERE id = $${values.length - 1} AND status = ANY($${values.length})`,
      values,
    );
    return result.rowCount === 1;
  }

  async setProgress(id: string, progress: JobProgress): Promise<void> {
    await query(this.pool, `UPDATE fine_tune_jobs SET progress = $1 WHERE id = $2 AND status = 'running'`, [JSON.stringify(progress), id]);
  }

  async recordAttempt(id: string, pid: number): Promise<void> {
    await query(this.pool, 'UPDATE fine_tune_jobs SET attempts = attempts + 1, worker_pid = $1 WHERE id = $2', [pid, id]);
  }

  async recordCrash(id: string): Promise<number> {
    const { rows } = await query<{ crashes: number }>(
      this.pool,
      'UPDATE fine_tune_jobs SET crashes = crashes + 1, worker_pid = NULL WHERE id = $1 RETURNING crashes',
      [id],
    );
    return rows[0]?.crashes ?? 0;
  }

  async requestCancel(id: string): Promise<void> {
    await query(this.pool, 'UPDATE fine_tune_jobs SET cancel_requested = TRUE WHERE id = $1', [id]);
  }

  async addEvent(jobId: string, event: NewJobEvent, now = new Date()): Promise<JobEvent> {
    const { rows } = await query<EventRow>(
      this.pool,
      `WITH e AS (
         INSERT INTO fine_tune_events (job_id, created_at, level, type, message, data) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *
       ) SELECT e.*, pg_notify('${JOB_EVENTS_CHANNEL}', e.job_id || ':' || e.id) FROM e`,
      [jobId, now, event.level ?? 'info', event.type, event.message, event.data ? JSON.stringify(event.data) : null],
    );
    return eventFromRow(rows[0]!);
  }

  async events(jobId: string, options: { afterId?: number; limit?: number } = {}): Promise<JobEvent[]> {
    const { rows } = await query<EventRow>(this.pool, 'SELECT * FROM fine_tune_events WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3', [
      jobId,
      options.afterId ?? 0,
      options.limit ?? 10_000,
    ]);
    return rows.map(eventFromRow);
  }

  async event(id: number): Promise<JobEvent | undefined> {
    const { rows } = await query<EventRow>(this.pool, 'SELECT * FROM fine_tune_events WHERE id = $1', [id]);
    return rows[0] ? eventFromRow(rows[0]) : undefined;
  }

  async recordCheckpoint(jobId: string, step: number, worker: string, now = new Date()): Promise<void> {
    await query(
      this.pool,
      `INSERT INTO fine_tune_checkpoints (job_id, step, worker, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (job_id, step) DO UPDATE SET worker = EXCLUDED.worker, created_at = EXCLUDED.created_at`,
      [jobId, step, worker, now],
    );
  }

  async checkpoints(jobId: string): Promise<CheckpointRecord[]> {
    const { rows } = await query<{ step: number; worker: string; created_at: Date }>(
      this.pool,
      'SELECT step, worker, created_at FROM fine_tune_checkpoints WHERE job_id = $1 ORDER BY step',
      [jobId],
    );
    return rows.map((r) => ({ step: r.step, worker: r.worker, created_at: r.created_at.toISOString() }));
  }

  // ---- leases (cluster workers) -------------------------------------------------------------------

  /** Remembers the queue's job id, so a dead worker's queue job can be failed (and so retried). */
  async setQueueJobId(id: string, queueJobId: string): Promise<void> {
    await query(this.pool, 'UPDATE fine_tune_jobs SET queue_job_id = $1 WHERE id = $2', [queueJobId, id]);
  }

  /**
   * Takes the job for `owner` for `leaseS` seconds: only while it is unfinished and nobody else holds
   * a live lease on it. Returns the job, or undefined when it is finished or held elsewhere.
   */
  async claim(id: string, owner: string, leaseS: number, pid: number): Promise<FineTuneJob | undefined> {
    const { rows } = await query<JobRow>(
      this.pool,
      `UPDATE fine_tune_jobs SET lease_owner = $2, lease_expires_at = now() + make_interval(secs => $3), attempts = attempts + 1, worker_pid = $4
       WHERE id = $1 AND status = ANY($5) AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires_at < now())
       RETURNING *`,
      [id, owner, leaseS, pid, [...ACTIVE]],
    );
    return rows[0] ? fromRow(rows[0]) : undefined;
  }

  /** Extends `owner`'s lease; `held` false means it was lost (taken over, or the job finished). */
  async renewLease(id: string, owner: string, leaseS: number): Promise<{ held: boolean; cancelRequested: boolean }> {
    const { rows } = await query<{ cancel_requested: boolean }>(
      this.pool,
      `UPDATE fine_tune_jobs SET lease_expires_at = now() + make_interval(secs => $3)
       WHERE id = $1 AND lease_owner = $2 AND status = ANY($4) RETURNING cancel_requested`,
      [id, owner, leaseS, [...ACTIVE]],
    );
    return rows[0] ? { held: true, cancelRequested: rows[0].cancel_requested } : { held: false, cancelRequested: false };
  }

  async releaseLease(id: string, owner: string): Promise<void> {
    await query(this.pool, 'UPDATE fine_tune_jobs SET lease_owner = NULL, lease_expires_at = NULL, worker_pid = NULL WHERE id = $1 AND lease_owner = $2', [
      id,
      owner,
    ]);
  }

  /** Cancels a job that no worker holds a live lease on; false when one does (or it has finished). */
  async cancelUnheld(id: string): Promise<boolean> {
    const result = await query(
      this.pool,
      `UPDATE fine_tune_jobs SET status = 'cancelled', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL
       WHERE id = $1 AND status = ANY($2) AND (lease_owner IS NULL OR lease_expires_at < now())`,
      [id, [...ACTIVE]],
    );
    return result.rowCount === 1;
  }

  /** Unfinished jobs whose lease ran out: their worker died or lost the database for a whole lease. */
  async expiredLeases(): Promise<ExpiredLease[]> {
    const { rows } = await query<ExpiredLease>(
      this.pool,
      'SELECT id, lease_owner, queue_job_id FROM fine_tune_jobs WHERE status = ANY($1) AND lease_owner IS NOT NULL AND lease_expires_at < now() ORDER BY seq',
      [[...ACTIVE]],
    );
    return rows;
  }

  /** Unfinished jobs no worker holds, created more than `olderThanS` seconds ago (to check they are queued). */
  async unheldJobs(olderThanS: number): Promise<{ id: string; queue_job_id: string | null }[]> {
    const { rows } = await query<{ id: string; queue_job_id: string | null }>(
      this.pool,
      'SELECT id, queue_job_id FROM fine_tune_jobs WHERE status = ANY($1) AND lease_owner IS NULL AND created_at < now() - make_interval(secs => $2) ORDER BY seq',
      [[...ACTIVE], olderThanS],
    );
    return rows;
  }

  /** Clears an expired lease (only if still the same owner and still expired); true when this call did. */
  async breakLease(id: string, owner: string): Promise<boolean> {
    const result = await query(
      this.pool,
      'UPDATE fine_tune_jobs SET lease_owner = NULL, lease_expires_at = NULL, worker_pid = NULL, crashes = crashes + 1 WHERE id = $1 AND lease_owner = $2 AND lease_expires_at < now()',
      [id, owner],
    );
    return result.rowCount === 1;
  }

  close(): void {
    // The pool belongs to the caller.
  }
}

function fromRow(row: JobRow): FineTuneJob {
  return {
    id: row.id,
    status: row.status,
    base_model: row.base_model,
    dataset_sha256: row.dataset_sha256,
    hyperparameters: row.hyperparameters,
    spec: row.spec,
    progress: row.progress,
    metrics: row.metrics,
    created_at: row.created_at.toISOString(),
    started_at: row.started_at?.toISOString() ?? null,
    finished_at: row.finished_at?.toISOString() ?? null,
    result_model: row.result_model,
    error: row.error,
    attempts: row.attempts,
    crashes: row.crashes,
    cancel_requested: row.cancel_requested,
    worker_pid: row.worker_pid,
  };
}

function eventFromRow(row: EventRow): JobEvent {
  return {
    id: Number(row.id),
    job_id: row.job_id,
    created_at: row.created_at.toISOString(),
    level: row.level,
    type: row.type,
    message: row.message,
    data: row.data,
  };
}
