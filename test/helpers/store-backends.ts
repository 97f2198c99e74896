// The two homes of shared state, for suites that must hold on both: the embedded one (SQLite and
// files under a temporary data dir) and a fresh Postgres database on one embedded server per test file.
import { after, before } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createPool, type Pool } from '../../src/store/postgres.ts';
import { migrate } from '../../src/store/migrations.ts';
import { startPostgres, type TestPostgres } from './embedded-postgres.ts';

export interface Backend {
  name: 'sqlite' | 'postgres';
  /** A fresh, empty place: a data dir (both), and for Postgres a migrated database and pool. */
  fresh(): Promise<{ dataDir: string; pool?: Pool; url?: string; cleanup(): Promise<void> }>;
}

/** Registers before/after hooks that start and stop one Postgres for the file; returns both backends. */
export function storeBackends(): { backends: Backend[]; postgres(): TestPostgres } {
  let server: TestPostgres | undefined;
  before(async () => {
    server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });
  const tempDir = () => mkdtempSync(path.join(os.tmpdir(), 'clinvqa-store-'));
  return {
    postgres: () => server!,
    backends: [
      {
        name: 'sqlite',
        async fresh() {
          const dataDir = tempDir();
          return { dataDir, cleanup: async () => rmSync(dataDir, { recursive: true, force: true }) };
        },
      },
      {
        name: 'postgres',
        async fresh() {
          const dataDir = tempDir();
          const url = await server!.newDatabase();
          const pool = createPool(url);
          await migrate(pool);
          return {
            dataDir,
            pool,
            url,
            cleanup: async () => {
              await pool.end();
              rmSync(dataDir, { recursive: true, force: true });
            },
          };
        },
      },
    ],
  };
}
