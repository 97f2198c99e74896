// What the rest of the code may ask of a fine-tune job store, whichever database holds it: the
// embedded SQLite file (job-store.ts, synchronous) or the shared Postgres database
// (job-store.postgres.ts, asynchronous). Callers `await` every call, so either fits.
import type { FineTuneHyperparameters } from './hyperparameters.ts';
import type { CheckpointRecord, FineTuneJob, JobEvent, JobProgress, JobSpec, JobStatus } from './job-store.ts';

export type MaybePromise<T> = T | Promise<T>;

export type JobColumns = Partial<Pick<FineTuneJob, 'dataset_sha256' | 'metrics' | 'result_model' | 'error' | 'worker_pid' | 'progress'>> & {
  started?: boolean;
  finished?: boolean;
};

export interface NewJobEvent {
  level?: JobEvent['level'];
  type: string;
  message: string;
  data?: Record<string, unknown> | null;
}

export interface JobRepository {
  create(input: { id: string; base_model: string; hyperparameters: FineTuneHyperparameters; spec: JobSpec; now?: Date }): MaybePromise<FineTuneJob>;
  get(id: string): MaybePromise<FineTuneJob | undefined>;
  list(options: { limit: number; after?: string }): MaybePromise<{ jobs: FineTuneJob[]; hasMore: boolean }>;
  withStatus(status: JobStatus): MaybePromise<FineTuneJob[]>;
  /** Conditional move from one of `from` to `to`; false (nothing changed) when the job is elsewhere. */
  transition(id: string, from: readonly JobStatus[], to: JobStatus, set?: JobColumns, now?: Date): MaybePromise<boolean>;
  setProgress(id: string, progress: JobProgress): MaybePromise<void>;
  recordAttempt(id: string, pid: number): MaybePromise<void>;
  recordCrash(id: string): MaybePromise<number>;
  requestCancel(id: string): MaybePromise<void>;
  addEvent(jobId: string, event: NewJobEvent, now?: Date): MaybePromise<JobEvent>;
  events(jobId: string, options?: { afterId?: number; limit?: number }): MaybePromise<JobEvent[]>;
  recordCheckpoint(jobId: string, step: number, worker: string, now?: Date): MaybePromise<void>;
  checkpoints(jobId: string): MaybePromise<CheckpointRecord[]>;
  close(): MaybePromise<void>;
}
