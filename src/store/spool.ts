// A local, append-only spool in front of the shared database for records written on the request path
// (audit entries, answered responses): the request appends a JSON line to a file (no database round
// trip, and the kernel keeps it if the process is killed -9), and a timer moves the lines into
// Postgres in batches. Each record carries a unique key and is inserted with ON CONFLICT DO NOTHING,
// so a batch sent twice — or swept by another replica after this one died — lands once.
//
// Layout: <root>/<instance>/pending.jsonl is appended to; a drain renames it to batch-<time>-<n>.jsonl
// (new appends start a fresh pending file), inserts every batch file and deletes it once written.
import { appendFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import { renameDurably } from '../files/durable-file.ts';
import path from 'node:path';

const PENDING = 'pending.jsonl';
/** A pending file of another instance untouched this long belongs to a dead process. */
const ORPHAN_AFTER_MS = 10_000;

export class Spool<T> {
  readonly dir: string;
  private counter = 0;
  private draining: Promise<void> | undefined;
  private appended = 0;

  constructor(
    private readonly root: string,
    instance: string,
  ) {
    this.dir = path.join(root, instance.replace(/[^A-Za-z0-9._-]/g, '_'));
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** Appends synchronously: once this returns, a kill -9 of this process cannot lose the record. */
  append(record: T): void {
    appendFileSync(path.join(this.dir, PENDING), `${JSON.stringify(record)}\n`, { mode: 0o600 });
    this.appended++;
  }

  /** Records appended since the last successful drain (roughly: what is not in the database yet). */
  get backlog(): number {
    return this.appended;
  }

  /** Writes every spooled record of this instance with `write`; rejects (keeping them) if it fails. */
  drain(write: (records: T[]) => Promise<void>): Promise<void> {
    if (this.draining) return this.draining;
    const run = async () => {
      const before = this.appended;
      await rotate(this.dir, () => `batch-${Date.now()}-${String(++this.counter).padStart(9, '0')}.jsonl`);
      await writeBatches(this.dir, write);
      this.appended -= before;
    };
    this.draining = run().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  /** Writes what other instances left behind (their finished batches, and pending files gone quiet). */
  async sweepOthers(write: (records: T[]) => Promise<void>): Promise<void> {
    let names: string[];
    try {
      names = readdirSync(this.root);
    } catch {
      return;
    }
    for (const name of names) {
      const dir = path.join(this.root, name);
      if (dir === this.dir) continue;
      const pending = statSync(path.join(dir, PENDING), { throwIfNoEntry: false });
      if (pending && Date.now() - pending.mtimeMs > ORPHAN_AFTER_MS) await rotate(dir, () => `batch-${Date.now()}-swept.jsonl`);
      await writeBatches(dir, write);
    }
  }
}

async function rotate(dir: string, name: () => string): Promise<void> {
  try {
    await renameDurably(path.join(dir, PENDING), path.join(dir, name()));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

async function writeBatches<T>(dir: string, write: (records: T[]) => Promise<void>): Promise<void> {
  const batches = readdirSync(dir)
    .filter((n) => n.startsWith('batch-'))
    .sort();
  for (const name of batches) {
    const file = path.join(dir, name);
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue; // another replica wrote and removed it
    }
    // A line cut short by a crash mid-append is the only unparsable kind; it was never acknowledged.
    const records = text.split('\n').flatMap((line) => {
      if (line === '') return [];
      try {
        return [JSON.parse(line) as T];
      } catch {
        return [];
      }
    });
    for (let i = 0; i < records.length; i += 500) await write(records.slice(i, i + 500));
    await unlink(file).catch(() => undefined);
  }
}
