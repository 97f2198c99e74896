// The A/B table in the shared Postgres database (cluster mode): every version is a row of
// `ab_tables` (the history), the newest row is the table in effect. Each replica keeps the table in
// memory — routing a request never touches the database — and swaps in a newer version when one
// is announced (NOTIFY on `clinvqa_ab_table`) or found by the periodic re-read.
//
// A change is computed from the newest stored version and inserted as version + 1; the primary key
// makes two replicas changing the table at once collide instead of losing one change: the loser
// re-reads and applies its change again on top of the winner's table.
import {
  AbTableConflictError,
  DEFAULT_STICKY_HEADER,
  checkAbTableSpec,
  canarySpec,
  defaultSpec,
  nextTable,
  parseAbTableInput,
  promotedSpec,
  type AbTable,
  type AbTableOrigin,
  type AbTableSpec,
} from './ab-table.ts';
import { fromFileEntry, toFileEntry, type AbTableBackend, type AbTableStoreOptions } from './ab-table-store.ts';
import { query, type Pool } from '../store/postgres.ts';

export const AB_TABLE_CHANNEL = 'clinvqa_ab_table';
const MAX_COMMIT_ATTEMPTS = 8;

type Change = { spec: AbTableSpec; origin: AbTableOrigin; promoted?: string | null; beforePromotion?: AbTable | null } | 'unchanged';

export type PostgresAbTableOptions = Omit<AbTableStoreOptions, 'dataDir'>;

export class PostgresAbTableStore implements AbTableBackend {
  private table: AbTable;

  private constructor(
    private readonly pool: Pool,
    private readonly options: PostgresAbTableOptions,
    initial: AbTable,
  ) {
    this.table = initial;
  }

  /** Loads the newest stored table, or stores the default one (every loaded model at weight 1). */
  static async open(pool: Pool, options: PostgresAbTableOptions): Promise<PostgresAbTableStore> {
    const saved = await readNewest(pool);
    if (saved) {
      const store = new PostgresAbTableStore(pool, options, saved);
      if (saved.origin === 'default') await store.followModels(options.defaultModels());
      return store;
    }
    const spec = defaultSpec(options.defaultModels(), options.defaultStickyHeader ?? DEFAULT_STICKY_HEADER);
    const first = nextTable(null, spec, { origin: 'default', now: options.now?.() ?? new Date() });
    const store = new PostgresAbTableStore(pool, options, first);
    // An empty default is kept in memory only, as the file store does; a replica that starts with models stores it.
    if (spec.variants.length > 0 && !(await insertVersion(pool, first))) await store.refresh();
    return store;
  }

  get current(): AbTable {
    return this.table;
  }

  /** Re-reads the newest version and puts it in effect if it is newer; returns the table in effect. */
  async refresh(): Promise<AbTable> {
    const newest = await readNewest(this.pool);
    if (newest && newest.version > this.table.version) {
      this.table = newest;
      this.options.log?.('A/B table updated from the database', { version: newest.version, origin: newest.origin });
    }
    return this.table;
  }

  replace(spec: AbTableSpec, origin: AbTableOrigin = 'admin'): Promise<AbTable> {
    checkAbTableSpec(spec, (id) => this.options.isKnownModel(id));
    return this.commit(() => ({ spec, origin }));
  }

  replaceFromInput(body: unknown): Promise<AbTable> {
    return this.replace(parseAbTableInput(body, this.options.defaultStickyHeader ?? DEFAULT_STICKY_HEADER));
  }

  promote(model: string): Promise<AbTable> {
    return this.commit((current) => {
      if (current.promoted === model) return 'unchanged';
      const spec = promotedSpec(current, model);
      checkAbTableSpec(spec, (id) => id !== model || this.options.isKnownModel(id));
      return { spec, origin: 'promote', promoted: model, beforePromotion: current };
    });
  }

  rollback(model: string): Promise<AbTable> {
    return this.commit((current) => {
      const before = current.beforePromotion;
      if (current.promoted !== model || before === null) throw new AbTableConflictError(`"${model}" is not the promoted model of the A/B table in effect`);
      checkAbTableSpec(before, (id) => this.options.isKnownModel(id));
      return { spec: before, origin: 'rollback', promoted: before.promoted, beforePromotion: before.beforePromotion };
    });
  }

  setCanary(model: string, share: number): Promise<AbTable> {
    return this.commit((current) => {
      const spec = canarySpec(current, model, share);
      checkAbTableSpec(spec, (id) => this.options.isKnownModel(id));
      return { spec, origin: 'canary' };
    });
  }

  followModels(modelIds: readonly string[]): Promise<AbTable> {
    return this.commit((current) => {
      if (current.origin !== 'default') return 'unchanged';
      const spec = defaultSpec(modelIds, current.stickyHeader);
      if (spec.variants.length === 0 || sameVariants(spec, current)) return 'unchanged';
      return { spec, origin: 'default' };
    });
  }

  /** Applies `change` to the newest stored table and stores the result as the next version. */
  private async commit(change: (current: AbTable) => Change): Promise<AbTable> {
    for (let attempt = 0; attempt < MAX_COMMIT_ATTEMPTS; attempt++) {
      const current = await this.refresh();
      const decided = change(current);
      if (decided === 'unchanged') return current;
      const next = nextTable(current, decided.spec, { ...decided, now: this.options.now?.() ?? new Date() });
      if (await insertVersion(this.pool, next)) {
        if (next.version > this.table.version) this.table = next;
        this.options.log?.('A/B table changed', { version: next.version, origin: next.origin });
        return next;
      }
      // Another replica stored this version first: build on its table.
    }
    throw new AbTableConflictError('the A/B table is being changed by other replicas too often; try again');
  }
}

async function readNewest(pool: Pool): Promise<AbTable | null> {
  const { rows } = await query<{ body: unknown }>(pool, 'SELECT body FROM ab_tables ORDER BY version DESC LIMIT 1');
  return rows[0] ? fromFileEntry(rows[0].body, 'table') : null;
}

/** Inserts a version and announces it; false when that version exists already. */
async function insertVersion(pool: Pool, table: AbTable): Promise<boolean> {
  const { rows } = await query<{ version: number }>(
    pool,
    `WITH t AS (INSERT INTO ab_tables (version, origin, body) VALUES ($1, $2, $3) ON CONFLICT (version) DO NOTHING RETURNING version)
     SELECT version, pg_notify('${AB_TABLE_CHANNEL}', version::text) FROM t`,
    [table.version, table.origin, JSON.stringify(toFileEntry(table))],
  );
  return rows.length === 1;
}

/** Every stored version, newest first (the history an auditor asks for). */
export async function abTableHistory(pool: Pool, limit = 100): Promise<AbTable[]> {
  const { rows } = await query<{ body: unknown }>(pool, 'SELECT body FROM ab_tables ORDER BY version DESC LIMIT $1', [limit]);
  return rows.map((r) => fromFileEntry(r.body, 'table'));
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
