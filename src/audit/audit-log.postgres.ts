// The audit trail in the shared Postgres database (cluster mode), one row per entry, so the whole
// deployment's trail is in one place. Writing sits on every request's path and must not wait for the
// database: entries are queued and inserted in batches. While the database is away they stay queued
// and are retried; none is dropped — past `maxQueued` the overflow goes to this replica's local
// JSON-lines file (the embedded audit log) with an error in the log, so it can be loaded later.
import { randomUUID } from 'node:crypto';
import { AuditLog, type AuditEntry, type AuditSink } from './audit-log.ts';
import { query, type Pool } from '../store/postgres.ts';

export interface PostgresAuditOptions {
  /** Names this process in each row (host and pid by default). */
  replica: string;
  /** Where overflow goes when the database stays away too long. */
  dataDir: string;
  flushIntervalMs?: number;
  maxQueued?: number;
  log?(message: string, fields?: Record<string, unknown>): void;
}

export class PostgresAuditSink implements AuditSink {
  private queue: { id: string; entry: AuditEntry }[] = [];
  private flushing: Promise<void> | undefined;
  private overflow: AuditLog | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pool: Pool,
    private readonly options: PostgresAuditOptions,
  ) {
    this.timer = setInterval(() => void this.flush().catch(() => undefined), options.flushIntervalMs ?? 200);
    this.timer.unref();
  }

  write(entry: AuditEntry): void {
    if (this.queue.length >= (this.options.maxQueued ?? 100_000)) {
      this.overflow ??= new AuditLog(this.options.dataDir, (error) => this.options.log?.('audit overflow file write failed', { error: error.message }));
      this.overflow.write(entry);
      this.options.log?.('audit entries spill to the local audit file while the database is unavailable', { file: this.overflow.file });
      return;
    }
    // The id makes a batch sent twice (a lost connection after the insert) land once.
    this.queue.push({ id: randomUUID(), entry });
  }

  get queued(): number {
    return this.queue.length;
  }

  /** Inserts everything queued; rejects (keeping the entries) while the database is away. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    const write = async () => {
        while (this.queue.length > 0) {
          const batch = this.queue.slice(0, 500);
          const values: unknown[] = [];
          const rows = batch.map((b, i) => {
            values.push(b.id, b.entry.time, this.options.replica, JSON.stringify(b.entry));
            return `($${i * 4 + 1}, $${i * 4 + 2}, $${i * 4 + 3}, $${i * 4 + 4})`;
          });
          await query(this.pool, `INSERT INTO audit_log (id, time, replica, entry) VALUES ${rows.join(', ')} ON CONFLICT (id) DO NOTHING`, values);
          this.queue.splice(0, batch.length);
        }
    };
    // Cleared in a later tick, so a flush that finds nothing queued cannot leave a stale promise behind.
    this.flushing = write().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  /** Flushes; what the database does not take by then goes to the local file. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    try {
      await this.flush();
    } catch (error) {
      this.overflow ??= new AuditLog(this.options.dataDir);
      for (const { entry } of this.queue.splice(0)) this.overflow.write(entry);
      this.options.log?.('audit entries written to the local audit file at shutdown: the database was unavailable', { error: String(error), file: this.overflow.file });
    }
    await this.overflow?.close();
  }
}

/** Entries in the order they were inserted (tests and audit export). */
export async function readAuditLog(pool: Pool, limit = 10_000): Promise<AuditEntry[]> {
  const { rows } = await query<{ entry: AuditEntry }>(pool, 'SELECT entry FROM audit_log ORDER BY seq LIMIT $1', [limit]);
  return rows.map((r) => r.entry);
}
