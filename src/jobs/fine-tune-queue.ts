// The fine-tune job queue of a cluster deployment: pg-boss on the shared Postgres. pg-boss claims
// with SKIP LOCKED (each job to one worker), retries, and moves a job that failed too often to a
// dead-letter queue. It has no heartbeat for long jobs, so the lease that decides when a silent
// worker's job is taken over lives on the job row (job-store.postgres.ts); a worker that finds a
// lapsed lease fails the pg-boss job, which pg-boss then hands to the next free worker.
import PgBoss from 'pg-boss';

export const FINE_TUNE_QUEUE = 'clinvqa-fine-tune';
export const FINE_TUNE_DEAD_QUEUE = 'clinvqa-fine-tune-dead';
/** pg-boss tries per job; the job row's own crash limit normally ends a job first. */
const RETRY_LIMIT = 10;

export interface FineTuneMessage {
  jobId: string;
}

export async function openFineTuneQueue(url: string, options: { supervise: boolean; onError?(error: Error): void }): Promise<PgBoss> {
  const boss = new PgBoss({
    connectionString: url,
    schema: 'pgboss',
    max: 3,
    supervise: options.supervise,
    schedule: false,
    // Expiry is pg-boss's own visibility timeout; it is only the backstop here (leases act first).
    expireInHours: 23,
    retryLimit: RETRY_LIMIT,
    retryDelay: 0,
  });
  boss.on('error', (error) => options.onError?.(error));
  await boss.start();
  await boss.createQueue(FINE_TUNE_DEAD_QUEUE);
  await boss.createQueue(FINE_TUNE_QUEUE, {
    name: FINE_TUNE_QUEUE,
    retryLimit: RETRY_LIMIT,
    retryDelay: 0,
    expireInHours: 23,
    deadLetter: FINE_TUNE_DEAD_QUEUE,
  });
  return boss;
}
