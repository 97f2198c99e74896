// The A/B variant table as a value: its types, its validation and the pure changes made to it
// (replace, promote, roll back, add a canary). Tables are frozen and never mutated; a change builds a
// new table with the next version, and the store (ab-table-store.ts) swaps the one reference. So a
// request that took `store.current` keeps a whole, valid table however the admin changes it meanwhile.

export const DEFAULT_STICKY_HEADER = 'X-Client-Id';
export const MAX_VARIANTS = 16;
export const MAX_WEIGHT = 1_000_000;
/** Label the server gives responses whose request named the model itself; no table variant may use it. */
export const OVERRIDE_VARIANT = 'override';

const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const VARIANT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HEADER_NAME = /^[A-Za-z0-9-]{1,64}$/;
// Routing on a credential would put secrets through the hash for no gain; ask for a client id instead.
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie']);

export interface AbVariant {
  /** Label in responses (X-Model-Variant), feedback and the report; defaults to the model id. */
  readonly name: string;
  readonly model: string;
  /** Relative weight; only the ratios matter. 0 keeps the variant listed but sends it no traffic. */
  readonly weight: number;
}

/** What a table is made of, before it gets a version: the validated body of `PUT /admin/ab`. */
export interface AbTableSpec {
  readonly variants: readonly AbVariant[];
  readonly stickyHeader: string;
}

/** How the table in effect came to be; `default` tables follow the set of loaded models. */
export type AbTableOrigin = 'default' | 'admin' | 'promote' | 'rollback' | 'canary';

export interface AbTable extends AbTableSpec {
  /** Grows by one with every change (and survives restarts), so it also seeds sticky assignment. */
  readonly version: number;
  /** ISO 8601. */
  readonly updatedAt: string;
  readonly origin: AbTableOrigin;
  /** The model the last promotion sent all traffic to, while that promotion is in effect. */
  readonly promoted: string | null;
  /** The table in effect before that promotion: what rollback restores (itself maybe a promotion). */
  readonly beforePromotion: AbTable | null;
}

/** The wire shape of openapi.yaml `AbTable`. */
export interface AbTableJson {
  version: number;
  variants: { name: string; model: string; weight: number }[];
  sticky_header: string;
  updated_at: string;
  promoted: string | null;
}

/** One thing wrong with a table, located by a JSON pointer into the request body (openapi Problem.errors). */
export interface AbTableProblem {
  path: string;
  message: string;
}

/**
 * `malformed`: the body does not have the documented shape (HTTP 400 invalid_request).
 * `invalid`: well-formed but unusable — unknown model, no positive weight, duplicates (HTTP 422 invalid_ab_table).
 */
export class AbTableError extends Error {
  override readonly name = 'AbTableError';
  constructor(
    readonly kind: 'malformed' | 'invalid',
    readonly problems: readonly AbTableProblem[],
  ) {
    super(`A/B table ${kind}: ${describeProblems(problems)}`);
  }
}

export function describeProblems(problems: readonly AbTableProblem[]): string {
  return problems.map((p) => (p.path === '' ? p.message : `${p.path}: ${p.message}`)).join('; ');
}

/** Error for a promote/rollback that does not apply to the current table (HTTP 409 conflict). */
export class AbTableConflictError extends Error {
  override readonly name = 'AbTableConflictError';
}

/**
 * Reads `{variants: [{name?, model, weight}], sticky_header?}` (the openapi `AbTableInput`). Shape only;
 * `checkAbTableSpec` then checks it against the loaded models.
 */
export function parseAbTableInput(body: unknown, defaultStickyHeader = DEFAULT_STICKY_HEADER): AbTableSpec {
  const problems: AbTableProblem[] = [];
  if (!isPlainObject(body)) throw new AbTableError('malformed', [{ path: '', message: 'the body must be a JSON object' }]);
  for (const key of Object.keys(body)) {
    if (key !== 'variants' && key !== 'sticky_header') problems.push({ path: `/${key}`, message: 'unknown property' });
  }
  let stickyHeader = defaultStickyHeader;
  if (body.sticky_header !== undefined) {
    if (typeof body.sticky_header !== 'string' || !HEADER_NAME.test(body.sticky_header)) {
      problems.push({ path: '/sticky_header', message: 'must be an HTTP header name (letters, digits, "-"; at most 64)' });
    } else if (SECRET_HEADERS.has(body.sticky_header.toLowerCase())) {
      problems.push({ path: '/sticky_header', message: `may not be ${body.sticky_header}: use a client id header, not a credential` });
    } else {
      stickyHeader = body.sticky_header;
    }
  }
  const variants: AbVariant[] = [];
  if (!Array.isArray(body.variants)) {
    problems.push({ path: '/variants', message: 'must be an array' });
  } else if (body.variants.length === 0 || body.variants.length > MAX_VARIANTS) {
    problems.push({ path: '/variants', message: `must hold 1 to ${MAX_VARIANTS} entries` });
  } else {
    body.variants.forEach((entry: unknown, i: number) => {
      const variant = parseVariant(entry, `/variants/${i}`, problems);
      if (variant) variants.push(variant);
    });
  }
  if (problems.length > 0) throw new AbTableError('malformed', problems);
  return Object.freeze({ variants: Object.freeze(variants), stickyHeader });
}

function parseVariant(entry: unknown, where: string, problems: AbTableProblem[]): AbVariant | undefined {
  if (!isPlainObject(entry)) {
    problems.push({ path: where, message: 'must be an object' });
    return undefined;
  }
  const before = problems.length;
  for (const key of Object.keys(entry)) {
    if (key !== 'name' && key !== 'model' && key !== 'weight') problems.push({ path: `${where}/${key}`, message: 'unknown property' });
  }
  const { name, model, weight } = entry;
  if (typeof model !== 'string' || !MODEL_ID.test(model)) problems.push({ path: `${where}/model`, message: 'must be a model id' });
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight < 0 || weight > MAX_WEIGHT) {
    problems.push({ path: `${where}/weight`, message: `must be a number from 0 to ${MAX_WEIGHT}` });
  }
  if (name !== undefined && (typeof name !== 'string' || !VARIANT_NAME.test(name))) {
    problems.push({ path: `${where}/name`, message: 'must be 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit' });
  }
  if (problems.length > before) return undefined;
  return Object.freeze({ name: (name as string | undefined) ?? (model as string), model: model as string, weight: weight as number });
}

/**
 * The rules a table must keep to be put in effect: some traffic goes somewhere, names and models are
 * unique (one model under two names would split one arm's data in two), every model is loaded, and
 * the label `override` stays free for requests that named their model.
 */
export function checkAbTableSpec(spec: AbTableSpec, isKnownModel: (id: string) => boolean): void {
  const problems: AbTableProblem[] = [];
  if (!spec.variants.some((v) => v.weight > 0)) problems.push({ path: '/variants', message: 'at least one variant must have a weight above 0' });
  const names = new Set<string>();
  const models = new Set<string>();
  spec.variants.forEach((v, i) => {
    const at = `/variants/${i}`;
    if (v.name === OVERRIDE_VARIANT) problems.push({ path: `${at}/name`, message: `"${OVERRIDE_VARIANT}" is reserved` });
    if (names.has(v.name)) problems.push({ path: `${at}/name`, message: `variant name "${v.name}" appears twice` });
    if (models.has(v.model)) problems.push({ path: `${at}/model`, message: `model "${v.model}" appears in two variants` });
    if (!isKnownModel(v.model)) problems.push({ path: `${at}/model`, message: `model "${v.model}" is not loaded` });
    names.add(v.name);
    models.add(v.model);
  });
  if (problems.length > 0) throw new AbTableError('invalid', problems);
}

/** The table that follows `previous` (or the first one) with `spec` in effect. */
export function nextTable(
  previous: AbTable | null,
  spec: AbTableSpec,
  change: { origin: AbTableOrigin; now: Date; promoted?: string | null; beforePromotion?: AbTable | null },
): AbTable {
  return Object.freeze({
    version: (previous?.version ?? 0) + 1,
    variants: Object.freeze(spec.variants.map((v) => Object.freeze({ ...v }))),
    stickyHeader: spec.stickyHeader,
    updatedAt: change.now.toISOString(),
    origin: change.origin,
    promoted: change.promoted ?? null,
    beforePromotion: trimHistory(change.beforePromotion ?? null, MAX_PROMOTION_HISTORY),
  });
}

/** Every model at equal weight: the table in effect until an admin sets one. */
export function defaultSpec(modelIds: readonly string[], stickyHeader = DEFAULT_STICKY_HEADER): AbTableSpec {
  const unique = [...new Set(modelIds)].sort();
  return Object.freeze({
    variants: Object.freeze(unique.map((model) => Object.freeze({ name: model, model, weight: 1 }))),
    stickyHeader,
  });
}

/**
 * All traffic to `model`: its variant (added under the model's id if absent) gets weight 1 and every
 * other variant weight 0, so the names stay listed and rollback has the table to go back to.
 */
export function promotedSpec(current: AbTableSpec, model: string): AbTableSpec {
  const present = current.variants.some((v) => v.model === model);
  const variants = current.variants.map((v) => Object.freeze({ ...v, weight: v.model === model ? 1 : 0 }));
  if (!present) variants.push(Object.freeze({ name: uniqueName(current, model), model, weight: 1 }));
  return Object.freeze({ variants: Object.freeze(variants), stickyHeader: current.stickyHeader });
}

/**
 * Adds `model` (or re-weights it) so that it receives `share` (0 < share < 1) of the traffic and the
 * other variants keep their ratios among themselves: w = share · W / (1 − share), W = their total.
 */
export function canarySpec(current: AbTableSpec, model: string, share: number): AbTableSpec {
  if (!(share > 0 && share < 1)) throw new AbTableError('invalid', [{ path: '', message: 'a canary share must lie strictly between 0 and 1' }]);
  const others = current.variants.filter((v) => v.model !== model);
  const rest = others.reduce((sum, v) => sum + v.weight, 0);
  if (rest === 0) throw new AbTableError('invalid', [{ path: '', message: 'the table has no other traffic to take a canary share of' }]);
  const weight = Math.min(MAX_WEIGHT, (share * rest) / (1 - share));
  const existing = current.variants.find((v) => v.model === model);
  const canary = Object.freeze({ name: existing?.name ?? uniqueName(current, model), model, weight });
  const variants = existing ? current.variants.map((v) => (v.model === model ? canary : v)) : [...current.variants, canary];
  return Object.freeze({ variants: Object.freeze(variants), stickyHeader: current.stickyHeader });
}

// Promotions stack (promote A, then B: rolling back B restores A's promotion); keep the stack short.
const MAX_PROMOTION_HISTORY = 8;

function trimHistory(table: AbTable | null, depth: number): AbTable | null {
  if (table === null) return null;
  if (depth <= 1) return table.beforePromotion === null ? table : Object.freeze({ ...table, beforePromotion: null });
  const inner = trimHistory(table.beforePromotion, depth - 1);
  return inner === table.beforePromotion ? table : Object.freeze({ ...table, beforePromotion: inner });
}

function uniqueName(spec: AbTableSpec, model: string): string {
  const taken = new Set(spec.variants.map((v) => v.name));
  const base = model.slice(0, 60);
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) if (!taken.has(`${base}-${i}`)) return `${base}-${i}`;
}

export function toAbTableJson(table: AbTable): AbTableJson {
  return {
    version: table.version,
    variants: table.variants.map((v) => ({ name: v.name, model: v.model, weight: v.weight })),
    sticky_header: table.stickyHeader,
    updated_at: table.updatedAt,
    promoted: table.promoted,
  };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
