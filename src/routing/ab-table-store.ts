// The A/B table in effect: one frozen object behind one reference, persisted to
// `<dataDir>/ab-table.json`. A change is validated, built, written (temp file, fsync, rename) and only
// then swapped in — all synchronously, so no request ever sees a half-made table, a failed write
// leaves the old table in effect, and two changes cannot interleave.
import fs from 'node:fs';
import path from 'node:path';
import { parseTempName, writeFileDurablySync } from '../files/durable-file.ts';
import {
  AbTableConflictError,
  AbTableError,
  DEFAULT_STICKY_HEADER,
  checkAbTableSpec,
  canarySpec,
  defaultSpec,
  describeProblems,
  nextTable,
  parseAbTableInput,
  promotedSpec,
  type AbTable,
  type AbTableOrigin,
  type AbTableSpec,
} from './ab-table.ts';

export const AB_TABLE_FILE = 'ab-table.json';
const FILE_FORMAT = 1;
const ORIGINS: readonly AbTableOrigin[] = ['default', 'admin', 'promote', 'rollback', 'canary'];

export interface AbTableStoreOptions {
  dataDir: string;
  /** Whether a model id names a loaded model; a table may only route to those. */
  isKnownModel(id: string): boolean;
  /** The models a default table spreads traffic over (every loaded model), when none was saved. */
  defaultModels(): readonly string[];
  /** Header carrying the client id in default tables and in PUTs that name none. */
  defaultStickyHeader?: string;
  now?(): Date;
  /** Lifecycle lines for the server log: versions and model ids only. */
  log?(message: string, fields?: Record<string, unknown>): void;
}

/** What the routes and the job queue ask of the A/B table, kept in a file (this class) or in Postgres. */
export interface AbTableBackend {
  readonly current: AbTable;
  replace(spec: AbTableSpec, origin?: AbTableOrigin): AbTable | Promise<AbTable>;
  replaceFromInput(body: unknown): AbTable | Promise<AbTable>;
  promote(model: string): AbTable | Promise<AbTable>;
  rollback(model: string): AbTable | Promise<AbTable>;
  setCanary(model: string, share: number): AbTable | Promise<AbTable>;
  followModels(modelIds: readonly string[]): AbTable | Promise<AbTable>;
}

export class AbTableStore implements AbTableBackend {
  private table: AbTable;
  readonly file: string;

  private constructor(
    private readonly options: AbTableStoreOptions,
    initial: AbTable,
  ) {
    this.file = path.join(options.dataDir, AB_TABLE_FILE);
    this.table = initial;
  }

  /**
   * Loads the saved table, or makes the default one (every loaded model at weight 1) and saves it so
   * that versions keep growing from there. A saved file that cannot be read stops the boot: silently
   * replacing an admin's table with the default would reroute live traffic.
   */
  static open(options: AbTableStoreOptions): AbTableStore {
    fs.mkdirSync(options.dataDir, { recursive: true });
    const file = path.join(options.dataDir, AB_TABLE_FILE);
    removeStaleTemps(options.dataDir);
    const saved = readTableFile(file);
    const header = options.defaultStickyHeader ?? DEFAULT_STICKY_HEADER;
    if (saved) {
      const store = new AbTableStore(options, saved);
      const missing = saved.variants.filter((v) => v.weight > 0 && !options.isKnownModel(v.model)).map((v) => v.model);
      if (missing.length > 0) options.log?.('A/B table routes to models that are not loaded; they get no traffic', { version: saved.version, missing });
      if (saved.origin === 'default') store.followModels(options.defaultModels());
      return store;
    }
    const spec = defaultSpec(options.defaultModels(), header);
    const first = nextTable(null, spec, { origin: 'default', now: options.now?.() ?? new Date() });
    const store = new AbTableStore(options, first);
    // An empty table is not a table an admin could PUT; keep it in memory until models appear.
    if (spec.variants.length > 0) writeTableFile(store.file, first);
    return store;
  }

  /** The table in effect. Take it once per request and use that one object throughout. */
  get current(): AbTable {
    return this.table;
  }

  /** Puts `spec` in effect as the next version (PUT /admin/ab). Throws AbTableError if invalid. */
  replace(spec: AbTableSpec, origin: AbTableOrigin = 'admin'): AbTable {
    checkAbTableSpec(spec, (id) => this.options.isKnownModel(id));
    return this.commit(spec, { origin });
  }

  /**
   * Parses a request body and puts it in effect: `parseAbTableInput` then `replace`. A body without
   * `sticky_header` gets the configured default, not the current header: PUT replaces the whole table.
   */
  replaceFromInput(body: unknown): AbTable {
    return this.replace(parseAbTableInput(body, this.options.defaultStickyHeader ?? DEFAULT_STICKY_HEADER));
  }

  /**
   * Sends all traffic to `model` (POST /admin/models/:id/promote). Promoting the model already
   * promoted changes nothing. Throws AbTableError if the model is not loaded.
   */
  promote(model: string): AbTable {
    const current = this.table;
    if (current.promoted === model) return current;
    const spec = promotedSpec(current, model);
    checkAbTableSpec(spec, (id) => id !== model || this.options.isKnownModel(id));
    return this.commit(spec, { origin: 'promote', promoted: model, beforePromotion: current });
  }

  /**
   * Restores the table in effect before `model` was promoted, as a new version. AbTableConflictError
   * if `model` is not the promotion in effect; AbTableError if that table names a model since unloaded.
   */
  rollback(model: string): AbTable {
    const current = this.table;
    const before = current.beforePromotion;
    if (current.promoted !== model || before === null) {
      throw new AbTableConflictError(`"${model}" is not the promoted model of the A/B table in effect`);
    }
    checkAbTableSpec(before, (id) => this.options.isKnownModel(id));
    return this.commit(before, { origin: 'rollback', promoted: before.promoted, beforePromotion: before.beforePromotion });
  }

  /** Gives `model` a `share` (0–1) of the traffic, the others keeping their ratios (a fine-tune's canary_weight). */
  setCanary(model: string, share: number): AbTable {
    const spec = canarySpec(this.table, model, share);
    checkAbTableSpec(spec, (id) => this.options.isKnownModel(id));
    return this.commit(spec, { origin: 'canary' });
  }

  /**
   * While no admin has set a table, keep the default in step with the loaded models (call after a model
   * is loaded or unloaded). A table an admin (or a promotion) set is left alone.
   */
  followModels(modelIds: readonly string[]): AbTable {
    const current = this.table;
    if (current.origin !== 'default') return current;
    const spec = defaultSpec(modelIds, current.stickyHeader);
    if (sameVariants(spec, current) || spec.variants.length === 0) return current;
    this.options.log?.('A/B default table follows the loaded models', { models: spec.variants.map((v) => v.model) });
    return this.commit(spec, { origin: 'default' });
  }

  private commit(spec: AbTableSpec, change: { origin: AbTableOrigin; promoted?: string | null; beforePromotion?: AbTable | null }): AbTable {
    const next = nextTable(this.table, spec, { ...change, now: this.options.now?.() ?? new Date() });
    writeTableFile(this.file, next);
    this.table = next;
    this.options.log?.('A/B table changed', { version: next.version, origin: next.origin });
    return next;
  }
}

function sameVariants(spec: AbTableSpec, table: AbTable): boolean {
  return (
    spec.variants.length === table.variants.length &&
    spec.variants.every((v, i) => {
      const w = table.variants[i]!;
      return v.name === w.name && v.model === w.model && v.weight === w.weight;
    })
  );
}

// ---- the file --------------------------------------------------------------------------------

export interface TableFileEntry {
  version: number;
  variants: { name: string; model: string; weight: number }[];
  sticky_header: string;
  updated_at: string;
  origin: AbTableOrigin;
  promoted: string | null;
  before_promotion: TableFileEntry | null;
}

/** The table as stored (file or database row): plain JSON, promotion history included. */
export function toFileEntry(table: AbTable): TableFileEntry {
  return {
    version: table.version,
    variants: table.variants.map((v) => ({ name: v.name, model: v.model, weight: v.weight })),
    sticky_header: table.stickyHeader,
    updated_at: table.updatedAt,
    origin: table.origin,
    promoted: table.promoted,
    before_promotion: table.beforePromotion ? toFileEntry(table.beforePromotion) : null,
  };
}

function writeTableFile(file: string, table: AbTable): void {
  writeFileDurablySync(file, `${JSON.stringify({ format: FILE_FORMAT, table: toFileEntry(table) }, null, 2)}\n`);
}

/** A crash between write and rename leaves a temp file; the saved table is still whole, so drop it. */
function removeStaleTemps(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    if (parseTempName(name)?.name === AB_TABLE_FILE) fs.rmSync(path.join(dir, name), { force: true });
  }
}

export class AbTableFileError extends Error {
  override readonly name = 'AbTableFileError';
}

function readTableFile(file: string): AbTable | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AbTableFileError(`${AB_TABLE_FILE} is not valid JSON; fix or remove it`);
  }
  const doc = parsed as { format?: unknown; table?: unknown };
  if (typeof parsed !== 'object' || parsed === null || doc.format !== FILE_FORMAT) {
    throw new AbTableFileError(`${AB_TABLE_FILE} has an unknown format; expected format ${FILE_FORMAT}`);
  }
  return fromFileEntry(doc.table, 'table');
}

/** Reads a stored table back, checking every field; AbTableFileError when it is not a valid table. */
export function fromFileEntry(entry: unknown, where: string): AbTable {
  const e = entry as Partial<TableFileEntry> | null;
  const fail = (why: string): never => {
    throw new AbTableFileError(`${AB_TABLE_FILE}: ${where} ${why}`);
  };
  if (typeof e !== 'object' || e === null) return fail('is not an object');
  let spec: AbTableSpec;
  try {
    spec = parseAbTableInput({ variants: e.variants, sticky_header: e.sticky_header });
  } catch (error) {
    return fail(error instanceof AbTableError ? describeProblems(error.problems) : String(error));
  }
  if (!Number.isSafeInteger(e.version) || (e.version as number) < 1) fail('has no valid version');
  if (typeof e.updated_at !== 'string' || Number.isNaN(Date.parse(e.updated_at))) fail('has no valid updated_at');
  if (!ORIGINS.includes(e.origin as AbTableOrigin)) fail('has no valid origin');
  if (e.promoted !== null && typeof e.promoted !== 'string') fail('has an invalid promoted');
  const before = e.before_promotion == null ? null : fromFileEntry(e.before_promotion, `${where}.before_promotion`);
  return Object.freeze({
    ...spec,
    version: e.version as number,
    updatedAt: e.updated_at as string,
    origin: e.origin as AbTableOrigin,
    promoted: (e.promoted as string | null | undefined) ?? null,
    beforePromotion: before,
  });
}
