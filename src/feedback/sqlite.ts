// better-sqlite3 ships no type declarations and @types/better-sqlite3 is not a dependency, so this file
// loads it through createRequire and types the small part of its API the feedback store uses. Kept
// local (no global `declare module`) so it cannot clash with declarations added elsewhere later.
import { createRequire } from 'node:module';

export type SqlValue = string | number | bigint | null | Buffer;
export type SqlParams = Record<string, SqlValue> | readonly SqlValue[];

export interface RunResult {
  changes: number;
  lastInsertRowid: number | bigint;
}

export interface Statement<Row = unknown> {
  run(...params: SqlParams[] | SqlValue[]): RunResult;
  get(...params: SqlParams[] | SqlValue[]): Row | undefined;
  all(...params: SqlParams[] | SqlValue[]): Row[];
}

export interface SqliteDatabase {
  prepare<Row = unknown>(sql: string): Statement<Row>;
  exec(sql: string): this;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  transaction<A extends unknown[], R>(fn: (...args: A) => R): (...args: A) => R;
  close(): this;
  readonly open: boolean;
}

type DatabaseConstructor = new (file: string, options?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => SqliteDatabase;

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as DatabaseConstructor;

/** Opens (creating) a database file in WAL mode: readers never block the one writer, and commits are cheap. */
export function openSqlite(file: string): SqliteDatabase {
  const db = new Database(file, { timeout: 5000 });
  db.pragma('journal_mode = WAL');
  // NORMAL in WAL mode stays consistent after a crash; only the last commits may be lost on power loss.
  db.pragma('synchronous = NORMAL');
  db.pragma('foreign_keys = ON');
  return db;
}
