// The audit trail in the shared Postgres database (cluster mode), one row per entry, so the whole
// deployment's trail is in one place. Writing sits on every request's path and must not wait for the
// database: each entry is appended to this replica's local spool (store/spool.ts) and moved into
// Postgres in batches. While the database is away the spool keeps them and the next drain retries;
// a replica killed -9 leaves its spool behind, and the next replica to start (any of them) sends it.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { AuditEntry, AuditSink } from './audit-log.ts';
import { query, type Pool } from '../store/postgres.ts';
import { Spool } from '../store/spool.ts';

export interface PostgresAuditOptions {
  /** Names this process in each row and its spool folder. */
  replica: string;
  /** The shared data dir; the spool lives under <dataDir>/spool/audit. */
  dataDir: string;
  flushIntervalMs?: number;
  log?(message: string, fields?: Record<string, unknown>): void;
}

interface Spooled {
  id: string;
  replica: string;
  entry: AuditEntry;
}

export class PostgresAuditSink implements AuditSink {
  private readonly spool: Spool<Spooled>;
  private readonly timer: NodeJS.Timeout;
  private failing = false;

  constructor(
    private readonly pool: Pool,
    private readonly options: PostgresAuditOptions,
  ) {
    this.spool = new Spool(path.join(options.dataDir, 'spool', 'audit'), options.replica);
    this.timer = setInterval(() => void this.flush().catch(() => undefined), options.flushIntervalMs ?? 200);
    this.timer.unref();
    // What replicas killed before they could send it.
    void this.spool.sweepOthers((records) => this.insert(records)).catch(() => undefined);
  }

  write(entry: AuditEntry): void {
    try {
      this.spool.append({ id: randomUUID(), replica: this.options.replica, entry });
    } catch (error) {
      // The local disk refused (full, read-only): nothing else can keep it; say so loudly.
      this.options.log?.('audit entry could not be spooled', { error: error instanceof Error ? error.message : String(error), request_id: entry.request_id });
    }
  }

  /** Entries spooled and not yet in the database. */
  get queued(): number {
    return this.spool.backlog;
  }

  /** Moves everything spooled into the database; rejects (keeping it spooled) while the database is away. */
  async flush(): Promise<void> {
    try {
      await this.spool.drain((records) => this.insert(records));
      if (this.failing) this.options.log?.('audit entries reach the database again');
      this.failing = false;
    } catch (error) {
      if (!this.failing)
        this.options.log?.('audit entries are kept in the local spool until the database is back', {
          error: error instanceof Error ? error.message : String(error),
        });
      this.failing = true;
      throw error;
    }
  }

  /** Flushes once more; what the database does not take stays spooled for the next start. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush().catch(() => undefined);
  }

  private async insert(records: Spooled[]): Promise<void> {
    const values: unknown[] = [];
    const rows = records.map((r, i) => {
      values.push(r.id, r.entry.time, r.replica, JSON.stringify(r.entry));
      return `($${i * 4 + 1}, $${i * 4 + 2}, $${i * 4 + 3}, $${i * 4 + 4})`;
    });
    await query(this.pool, `INSERT INTO audit_log (id, time, replica, entry) VALUES ${rows.join(', ')} ON CONFLICT (id) DO NOTHING`, values);
  }
}

/** Entries in the order they were inserted (tests and audit export). */
export async function readAuditLog(pool: Pool, limit = 10_000): Promise<AuditEntry[]> {
  const { rows } = await query<{ entry: AuditEntry }>(pool, 'SELECT entry FROM audit_log ORDER BY seq LIMIT $1', [limit]);
  return rows.map((r) => r.entry);
}
