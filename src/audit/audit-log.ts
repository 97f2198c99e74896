// The audit trail: one JSON line per inference and per admin action, appended to
// <data dir>/audit/audit.jsonl. It answers "who asked which model what kind of thing, when, and
// with which image" — the image only as its SHA-256. Images, questions and answers never enter it,
// and the entry type below has no field that could carry them.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import path from 'node:path';

export interface AuditEntry {
  time: string;
  request_id: string;
  /** Key id from config (never the key); `anonymous` when the request had no valid key. */
  key_id: string;
  role: string | null;
  method: string;
  /** Contract path template, e.g. `/v1/vqa` or `/admin/models/{id}/promote`. */
  route: string;
  /** Path parameters (model ids, job ids): safe, and needed to know what an admin acted on. */
  target: string | null;
  action: string | null;
  /** Admin-action details (table versions, weights); null for inferences. */
  details: Record<string, unknown> | null;
  model: string | null;
  variant: string | null;
  image_sha256: string | null;
  status: number;
  duration_ms: number;
}

export interface AuditSink {
  write(entry: AuditEntry): void;
  close(): Promise<void>;
}

export class AuditLog implements AuditSink {
  readonly file: string;
  private readonly stream: WriteStream;
  private failed = false;

  constructor(
    dataDir: string,
    private readonly onError: (error: Error) => void = () => undefined,
  ) {
    const dir = path.join(dataDir, 'audit');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = path.join(dir, 'audit.jsonl');
    // Append-only; 0600 because even hashes and key ids are nobody else's business.
    this.stream = createWriteStream(this.file, { flags: 'a', mode: 0o600 });
    this.stream.on('error', (error) => {
      this.failed = true;
      this.onError(error);
    });
  }

  write(entry: AuditEntry): void {
    if (this.failed) return;
    this.stream.write(`${JSON.stringify(entry)}\n`);
  }

  /** Flushes and closes; entries written before are on disk when this resolves. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stream.closed || this.failed) return resolve();
      this.stream.end(() => resolve());
    });
  }
}

/** Keeps entries in memory (tests). */
export class MemoryAuditSink implements AuditSink {
  readonly entries: AuditEntry[] = [];
  write(entry: AuditEntry): void {
    this.entries.push(entry);
  }
  async close(): Promise<void> {}
}
