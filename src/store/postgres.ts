// The Postgres connection of a cluster deployment: one pool per process, and the one place that
// decides whether a failure means "the database is not reachable right now" (the caller answers
// 503 database_unavailable and the client retries) or a real bug (500).
import pg from 'pg';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** The database could not be reached or went away mid-statement; retrying later may succeed. */
export class DatabaseUnavailableError extends Error {
  override readonly name = 'DatabaseUnavailableError';
}

// Connection-level SQLSTATE classes: 08 connection exception, 57P01-57P03 server shutting down or starting.
const UNAVAILABLE_SQLSTATE = /^(08...|57P0[123]|53300)$/;
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);

export function isUnavailable(error: unknown): boolean {
  if (error instanceof DatabaseUnavailableError) return true;
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.has(code))) return true;
  const message = error instanceof Error ? error.message : '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connection is not open|Cannot use a pool after calling end/i.test(
    message,
  );
}

/** Rethrows connection failures as DatabaseUnavailableError, anything else unchanged. */
export function translateDbError(error: unknown): never {
  if (error instanceof DatabaseUnavailableError) throw error;
  if (isUnavailable(error))
    throw new DatabaseUnavailableError(`the database is unavailable: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  throw error;
}

export interface PoolOptions {
  /** Connections kept per process; servers need few (the hot path never queries). */
  max?: number;
  /** How long a query waits for a connection before failing (fails fast when the database is down). */
  connectTimeoutMs?: number;
  onError?(error: Error): void;
}

export function createPool(url: string, options: PoolOptions = {}): Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 5,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 2000,
    idleTimeoutMillis: 30_000,
    // A statement that hangs on a half-dead connection must not hold an admin request forever.
    query_timeout: 10_000,
  });
  // An idle client losing its connection (database restart) emits here; without a listener it would crash the process.
  pool.on('error', (error) => options.onError?.(error));
  return pool;
}

/** Runs one query, mapping connection failures to DatabaseUnavailableError. */
export async function query<Row extends pg.QueryResultRow = pg.QueryResultRow>(
  pool: Pool | PoolClient,
  text: string,
  values: unknown[] = [],
): Promise<pg.QueryResult<Row>> {
  try {
    return await pool.query<Row>(text, values);
  } catch (error) {
    return translateDbError(error);
  }
}

/** BEGIN … COMMIT on one pooled connection; ROLLBACK on any error. */
export async function transaction<T>(pool: Pool, work: (client: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    return translateDbError(error);
  }
  let broken = false;
  try {
    await client.query('BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    broken = isUnavailable(error);
    if (!broken) await client.query('ROLLBACK').catch(() => undefined);
    return translateDbError(error);
  } finally {
    client.release(broken);
  }
}
