// Two server replicas (real apps, fake runtimes) on one embedded Postgres, in one process: changes
// made through either are in effect on the other within 2 s without a restart; Postgres restarting
// under them costs admin writes a 503 database_unavailable while inference keeps answering, and no
// audit entry is lost.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { createApp, type ClinvqaApp } from '../../src/app.ts';
import { readAuditLog } from '../../src/audit/audit-log.postgres.ts';
import { silentLogger } from '../../src/audit/logger.ts';
import { createClusterServer } from '../../src/cluster-server.ts';
import { loadConfig } from '../../src/config.ts';
import { createPool } from '../../src/store/postgres.ts';
import { startPostgres, type TestPostgres } from '../helpers/embedded-postgres.ts';
import { fakeLoader } from '../helpers/fake-runtime.ts';
import { smallPng } from '../helpers/images.ts';
import { ADMIN_AUTH, ADMIN_KEY, AUTH, CLINICIAN_KEY, writeFakePackage } from '../helpers/test-app.ts';

let pg: TestPostgres;
before(async () => {
  pg = await startPostgres();
});
after(async () => {
  await pg.stop();
});

async function replicas(t: { after(fn: () => Promise<void>): void }, models: string[]) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-replicas-'));
  const modelsDir = path.join(root, 'models');
  for (const id of models) writeFakePackage(modelsDir, id);
  const url = await pg.newDatabase();
  const apps: ClinvqaApp[] = [];
  for (const name of ['a', 'b']) {
    const config = loadConfig({
      CLINVQA_API_KEYS: `clinician:${CLINICIAN_KEY},admin:${ADMIN_KEY}`,
      CLINVQA_DATA_DIR: path.join(root, 'var'),
      CLINVQA_MODELS_DIR: modelsDir,
      CLINVQA_BATCH_MAX_WAIT_MS: '2',
      CLINVQA_DATABASE_URL: url,
      CLINVQA_INSTANCE_ID: name,
    });
    const cluster = await createClusterServer(config, silentLogger);
    apps.push(
      await createApp({
        config,
        loader: fakeLoader(),
        logger: silentLogger,
        stores: cluster.stores,
        audit: cluster.audit,
        extraRouters: (parts) => cluster.extraRouters(parts),
      }),
    );
  }
  t.after(async () => {
    for (const app of apps) await app.close();
    rmSync(root, { recursive: true, force: true });
  });
  return { a: apps[0]!, b: apps[1]!, url, modelsDir };
}

/** Milliseconds until `check` holds (polling every 20 ms), failing past `limitMs`. */
async function within(limitMs: number, what: string, check: () => boolean | Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > limitMs) assert.fail(`${what}: not within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

describe('replicas on one database', () => {
  test('A/B changes, promote, rollback, load and unload through one replica are in effect on the other within 2 s', async (t) => {
    const { a, b, modelsDir } = await replicas(t, ['m1', 'm2']);
    assert.deepEqual(b.abTable.current, a.abTable.current, 'both start on the same stored table');

    const put = await request(a.app)
      .put('/admin/ab')
      .set(ADMIN_AUTH)
      .send({
        variants: [
          { model: 'm1', weight: 3 },
          { model: 'm2', weight: 1 },
        ],
      });
    assert.equal(put.status, 200, put.text);
    await within(2000, 'PUT through A seen on B', () => b.abTable.current.version === put.body.version);
    assert.deepEqual(b.abTable.current, a.abTable.current);

    const promote = await request(b.app).post('/admin/models/m2/promote').set(ADMIN_AUTH);
    assert.equal(promote.status, 200, promote.text);
    await within(2000, 'promote through B seen on A', () => a.abTable.current.promoted === 'm2');
    // Sticky clients land on the same variant on both replicas.
    const png = await smallPng();
    for (const client of ['c1', 'c2', 'c3']) {
      const onA = await request(a.app)
        .post('/v1/vqa')
        .set(AUTH)
        .set('X-Client-Id', client)
        .send({ image: png.toString('base64'), question: 'Normal?' });
      const onB = await request(b.app)
        .post('/v1/vqa')
        .set(AUTH)
        .set('X-Client-Id', client)
        .send({ image: png.toString('base64'), question: 'Normal?' });
      assert.equal(onA.status, 200, onA.text);
      assert.equal(onA.body.variant, onB.body.variant);
      assert.equal(onA.body.model, 'm2');
    }
    const rollback = await request(a.app).post('/admin/models/m2/rollback').set(ADMIN_AUTH);
    assert.equal(rollback.status, 200, rollback.text);
    await within(2000, 'rollback through A seen on B', () => b.abTable.current.promoted === null && b.abTable.current.version === rollback.body.version);

    writeFakePackage(modelsDir, 'm3');
    const load = await request(b.app).post('/admin/models/m3/load').set(ADMIN_AUTH);
    assert.equal(load.status, 200, load.text);
    await within(2000, 'model loaded through B served on A', () => a.registry.has('m3'));
    const unload = await request(a.app).delete('/admin/models/m3').set(ADMIN_AUTH);
    assert.equal(unload.status, 204, unload.text);
    await within(2000, 'model unloaded through A gone on B', () => !b.registry.has('m3'));

    // The report is the database's: answers from both replicas count, once their batched response
    // records (flushed every 200 ms, off the inference path) have landed.
    let requests = 0;
    await within(2000, 'every answer of both replicas in the report', async () => {
      const report = await request(b.app).get('/admin/ab/report').set(ADMIN_AUTH);
      assert.equal(report.status, 200);
      requests = (report.body.variants as { requests: number }[]).reduce((s, v) => s + v.requests, 0);
      return requests >= 6;
    });
    assert.equal(requests, 6);
  });

  test('Postgres restarts under the replicas: inference answers, admin writes 503 then succeed, no audit entry lost', async (t) => {
    const { a, b, url } = await replicas(t, ['m1', 'm2']);
    const png = await smallPng();
    const ask = (app: ClinvqaApp) =>
      request(app.app)
        .post('/v1/vqa')
        .set(AUTH)
        .send({ image: png.toString('base64'), question: 'Normal?' });
    await pg.pause();
    const during: string[] = [];
    try {
      for (const app of [a, b]) {
        const answer = await ask(app);
        assert.equal(answer.status, 200, `inference needs no database: ${answer.text}`);
        during.push(answer.headers['x-request-id'] as string);
      }
      const write = await request(a.app)
        .put('/admin/ab')
        .set(ADMIN_AUTH)
        .send({ variants: [{ model: 'm1', weight: 1 }] });
      assert.equal(write.status, 503, write.text);
      assert.match(write.headers['content-type']!, /application\/problem\+json/);
      assert.equal(write.body.code, 'database_unavailable');
      assert.ok(write.headers['retry-after']);
      during.push(write.headers['x-request-id'] as string);
      const report = await request(b.app).get('/admin/ab/report').set(ADMIN_AUTH);
      assert.equal(report.status, 503);
      during.push(report.headers['x-request-id'] as string);
    } finally {
      await pg.resume();
    }
    let version = 0;
    await within(15_000, 'admin writes succeed again', async () => {
      const write = await request(a.app)
        .put('/admin/ab')
        .set(ADMIN_AUTH)
        .send({ variants: [{ model: 'm1', weight: 1 }] });
      version = write.body.version;
      return write.status === 200;
    });
    await within(8000, 'B catches up after its listener reconnects', () => b.abTable.current.version === version);
    // Every request of the outage is in the shared audit trail once the database is back.
    const pool = createPool(url);
    t.after(() => pool.end());
    await within(5000, 'audit entries of the outage flushed', async () => {
      const ids = new Set((await readAuditLog(pool)).map((e) => e.request_id));
      return during.every((id) => ids.has(id));
    });
  });
});
