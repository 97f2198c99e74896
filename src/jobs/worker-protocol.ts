// The IPC messages between the server (job-queue.ts) and a fine-tune worker (finetune-worker.ts).
// The server owns the job's row; the worker reports and the server records.
import type { JobProgress } from './job-store.ts';

export type WorkerMessage =
  | { type: 'event'; level: 'info' | 'warn' | 'error'; event: string; message: string; data?: Record<string, unknown> }
  | ({ type: 'progress' } & JobProgress)
  /** The package is written; the server registers it and the job succeeds. */
  | { type: 'succeeded'; result_model: string; metrics: Record<string, unknown> }
  /** A cancel was honoured (a checkpoint was saved first when training had begun). */
  | { type: 'cancelled'; step: number }
  /** The server asked it to stop for a shutdown; the job resumes from the checkpoint on the next start. */
  | { type: 'paused'; step: number }
  /** A failure that a retry would repeat (bad base model, bad data): the job fails without retrying. */
  | { type: 'failed'; message: string };

export type ServerMessage = { type: 'stop'; reason: 'cancel' | 'shutdown' };

/** Exit code of a worker that lost its server (IPC channel closed): the job is resumed on restart. */
export const EXIT_ORPHANED = 3;

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}
