// One suite, two audit sinks (the embedded JSON-lines file, the Postgres table); then the fault the
// database adds: it goes away while entries keep coming, and none is lost.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AuditLog, type AuditEntry, type AuditSink } from '../../src/audit/audit-log.ts';
import { PostgresAuditSink, readAuditLog } from '../../src/audit/audit-log.postgres.ts';
import { createPool } from '../../src/store/postgres.ts';
import { storeBackends } from '../helpers/store-backends.ts';

const entry = (i: number): AuditEntry => ({
  time: new Date(i * 1000).toISOString(),
  request_id: `req-${i}`,
  key_id: 'key_0123456789ab',
  role: 'admin',
  method: 'PUT',
  route: '/admin/ab',
  target: null,
  action: 'ab_table.replace',
  details: { version: i },
  model: null,
  variant: null,
  image_sha256: null,
  status: 200,
  duration_ms: 5,
});

const { backends, postgres } = storeBackends();

for (const backend of backends) {
  describe(`audit sink (${backend.name})`, () => {
    test('every entry written is there after close, in order, whole', async (t) => {
      const place = await backend.fresh();
      t.after(() => place.cleanup());
      const sink: AuditSink = place.pool ? new PostgresAuditSink(place.pool, { replica: 'r1', dataDir: place.dataDir }) : new AuditLog(place.dataDir);
      for (let i = 1; i <= 120; i++) sink.write(entry(i));
      await sink.close();
      const read = place.pool
        ? await readAuditLog(place.pool)
        : readFileSync((sink as AuditLog).file, 'utf8')
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l) as AuditEntry);
      assert.equal(read.length, 120);
      assert.deepEqual(read[41], entry(42));
      assert.deepEqual(
        read.map((e) => e.request_id),
        Array.from({ length: 120 }, (_, i) => `req-${i + 1}`),
      );
    });
  });
}

describe('audit sink faults (postgres)', () => {
  test('entries written while the database is down are kept in the spool and land once it is back', async (t) => {
    const place = await backends[1]!.fresh();
    t.after(() => place.cleanup());
    const pool = createPool(place.url!, { connectTimeoutMs: 500 });
    t.after(() => pool.end());
    const sink = new PostgresAuditSink(pool, { replica: 'r1', dataDir: place.dataDir, flushIntervalMs: 50 });
    sink.write(entry(1));
    await sink.flush();
    await postgres().pause();
    try {
      for (let i = 2; i <= 40; i++) sink.write(entry(i));
      await assert.rejects(sink.flush());
      assert.equal(sink.queued, 39, 'held in the spool');
    } finally {
      await postgres().resume();
    }
    // The first query after the restart may meet a connection the restart cut; the next drain retries.
    for (let i = 0; ; i++) {
      const ok = await sink.flush().then(
        () => true,
        () => false,
      );
      if (ok) break;
      assert.ok(i < 50, 'the spool drains once the database is back');
      await new Promise((r) => setTimeout(r, 100));
    }
    await sink.close();
    const inDb = (await readAuditLog(pool)).map((e) => e.request_id);
    assert.deepEqual(
      inDb,
      Array.from({ length: 40 }, (_, i) => `req-${i + 1}`),
      'all 40, once each, in order',
    );
  });

  test('a replica killed before sending its entries: the next start of that replica sends them', async (t) => {
    const place = await backends[1]!.fresh();
    t.after(() => place.cleanup());
    // The first sink never flushes (an hour-long interval) and is never closed: as if killed -9.
    const crashed = new PostgresAuditSink(place.pool!, { replica: 'r1', dataDir: place.dataDir, flushIntervalMs: 3_600_000 });
    for (let i = 1; i <= 5; i++) crashed.write(entry(i));
    assert.deepEqual(await readAuditLog(place.pool!), []);
    const restarted = new PostgresAuditSink(place.pool!, { replica: 'r1', dataDir: place.dataDir });
    await restarted.flush();
    assert.deepEqual(
      (await readAuditLog(place.pool!)).map((e) => e.request_id),
      ['req-1', 'req-2', 'req-3', 'req-4', 'req-5'],
    );
    await restarted.close();
    await crashed.close();
    assert.equal((await readAuditLog(place.pool!)).length, 5, 'nothing twice');
  });
});
