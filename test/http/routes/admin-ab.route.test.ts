import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import express, { type ErrorRequestHandler } from 'express';
import request from 'supertest';
import { ApiError, toProblem } from '../../../src/errors.ts';
import { toApiError } from '../../../src/http/error-translation.ts';
import { FeedbackStore } from '../../../src/feedback/feedback-store.ts';
import { createAdminAbRouter, type AbAuditEvent } from '../../../src/http/routes/admin-ab.route.ts';
import { createFeedbackRouter } from '../../../src/http/routes/feedback.route.ts';
import { AB_TABLE_FILE, AbTableStore } from '../../../src/routing/ab-table-store.ts';
import { pickVariant } from '../../../src/routing/sticky-router.ts';
import { assertContract, assertProblem } from '../../helpers/contract.ts';

const renderProblems: ErrorRequestHandler = (error, _req, res, _next) => {
  const apiError = toApiError(error);
  res
    .status(apiError.status)
    .type('application/problem+json')
    .send(JSON.stringify(toProblem(apiError)));
};

const MODELS = ['clinvqa-sft', 'clinvqa-grpo', 'clinvqa-ft1'];

/**
 * The A/B routers plus a stand-in for /v1/vqa that does what the real service does with the table:
 * take `current` once, pick, "infer" (an await), record the response. A fake model answers correctly
 * with a fixed probability per model, so the report has a known truth to find.
 */
function setup(t: { after(fn: () => void): void }, inferMs = 0) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clinvqa-ab-route-'));
  const table = AbTableStore.open({ dataDir: dir, isKnownModel: (id) => MODELS.includes(id), defaultModels: () => MODELS.slice(0, 2) });
  const store = FeedbackStore.open(dir);
  t.after(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const audits: AbAuditEvent[] = [];
  const app = express();
  app.post('/fake-vqa', async (req, res) => {
    const current = table.current;
    const picked = pickVariant(current, req.get(current.stickyHeader), (m) => MODELS.includes(m));
    if (!picked) throw ApiError.of('model_unavailable', 'none');
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, inferMs));
    const id = randomUUID();
    store.recordResponse({
      responseId: id,
      model: picked.variant.model,
      variant: picked.variant.name,
      tableVersion: picked.tableVersion,
      latencyMs: performance.now() - started,
    });
    res.json({ id, variant: picked.variant.name, model: picked.variant.model, version: picked.tableVersion, variants: current.variants });
  });
  app.use(createFeedbackRouter({ store }));
  // ensureModel stands in for registry.ensureLoaded: 'clinvqa-ft1' is a package that loads on demand.
  const ensured: string[] = [];
  const ensureModel = async (id: string) => {
    ensured.push(id);
    return MODELS.includes(id);
  };
  app.use(createAdminAbRouter({ table, stats: store, audit: (event) => audits.push(event), ensureModel }));
  app.use(renderProblems);
  return { app, table, store, audits, dir, ensured };
}

test('GET /admin/ab returns the default table (every loaded model, equal weight)', async (t) => {
  const { app } = setup(t);
  const res = await request(app).get('/admin/ab');
  assert.equal(res.status, 200);
  assertContract('GET', '/admin/ab', res);
  assert.equal(res.body.version, 1);
  assert.equal(res.body.sticky_header, 'X-Client-Id');
  assert.deepEqual(res.body.variants, [
    { name: 'clinvqa-grpo', model: 'clinvqa-grpo', weight: 1 },
    { name: 'clinvqa-sft', model: 'clinvqa-sft', weight: 1 },
  ]);
});

test('PUT /admin/ab puts a table in effect, persists it, bumps the version and audits the change', async (t) => {
  const { app, audits, dir } = setup(t);
  const body = {
    variants: [
      { name: 'treatment', model: 'clinvqa-grpo', weight: 0.9 },
      { name: 'control', model: 'clinvqa-sft', weight: 0.1 },
    ],
    sticky_header: 'X-Site-User',
  };
  const res = await request(app).put('/admin/ab').send(body);
  assert.equal(res.status, 200, res.text);
  assertContract('PUT', '/admin/ab', res);
  assert.equal(res.body.version, 2);
  assert.equal(res.body.sticky_header, 'X-Site-User');
  assert.deepEqual((await request(app).get('/admin/ab')).body, res.body);
  assert.equal(JSON.parse(fs.readFileSync(path.join(dir, AB_TABLE_FILE), 'utf8')).table.version, 2);
  assert.deepEqual(audits, [
    {
      action: 'ab_table.replace',
      previous_version: 1,
      version: 2,
      sticky_header: 'X-Site-User',
      variants: [
        { name: 'treatment', model: 'clinvqa-grpo', weight: 0.9 },
        { name: 'control', model: 'clinvqa-sft', weight: 0.1 },
      ],
    },
  ]);
});

test('PUT /admin/ab rejects bad tables (400 malformed, 422 invalid, 415, bad JSON) and keeps the old one', async (t) => {
  const { app, audits, table } = setup(t);
  const before = table.current;
  const malformed = await request(app)
    .put('/admin/ab')
    .send({ variants: [{ model: 'clinvqa-grpo', weight: -1 }] });
  assertProblem('PUT', '/admin/ab', malformed, 400, 'invalid_request');
  assert.deepEqual(malformed.body.errors ?? JSON.parse(malformed.text).errors, [{ path: '/variants/0/weight', message: 'must be a number from 0 to 1000000' }]);
  for (const variants of [
    [{ model: 'not-loaded', weight: 1 }],
    [
      { model: 'clinvqa-grpo', weight: 0 },
      { model: 'clinvqa-sft', weight: 0 },
    ],
    [
      { model: 'clinvqa-grpo', weight: 1 },
      { name: 'again', model: 'clinvqa-grpo', weight: 1 },
    ],
    [{ name: 'override', model: 'clinvqa-grpo', weight: 1 }],
  ]) {
    const res = await request(app).put('/admin/ab').send({ variants });
    assertProblem('PUT', '/admin/ab', res, 422, 'invalid_ab_table');
    assert.ok(JSON.parse(res.text).errors.length >= 1);
  }
  assertProblem('PUT', '/admin/ab', await request(app).put('/admin/ab').set('content-type', 'text/plain').send('x'), 415, 'unsupported_media_type');
  assertProblem('PUT', '/admin/ab', await request(app).put('/admin/ab').set('content-type', 'application/json').send('{"variants": ['), 400, 'bad_json');
  assert.equal(table.current, before);
  assert.deepEqual(audits, []);
});

test('the loop: sticky traffic split by the table, feedback, and a report that finds the better arm', async (t) => {
  const { app: handler } = setup(t);
  const server = handler.listen(0); // one server for all requests (request(app) would start one per request)
  t.after(() => server.close());
  const app = request(server);
  await app
    .put('/admin/ab')
    .send({
      variants: [
        { name: 'grpo', model: 'clinvqa-grpo', weight: 1 },
        { name: 'sft', model: 'clinvqa-sft', weight: 1 },
      ],
    })
    .expect(200);
  const accuracy: Record<string, number> = { 'clinvqa-grpo': 0.85, 'clinvqa-sft': 0.55 };
  let seed = 42;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const assigned = new Map<string, string>();
  // Two rounds; in each, 100 clinicians ask at once and then all send their verdicts.
  for (let round = 0; round < 2; round++) {
    const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => app.post('/fake-vqa').set('X-Client-Id', `clinician-${i}`)));
    await Promise.all(
      answers.map((res, i) => {
        assert.equal(res.status, 200);
        const client = `clinician-${i}`;
        if (assigned.has(client)) assert.equal(res.body.variant, assigned.get(client), 'sticky while the table is unchanged');
        assigned.set(client, res.body.variant);
        return app
          .post('/v1/feedback')
          .send({ response_id: res.body.id, correct: rand() < accuracy[res.body.model]! })
          .expect(200);
      }),
    );
  }
  const report = await app.get('/admin/ab/report');
  assert.equal(report.status, 200);
  assertContract('GET', '/admin/ab/report', report);
  assert.equal(report.body.table_version, 2);
  const rows = Object.fromEntries(report.body.variants.map((v: { variant: string }) => [v.variant, v]));
  assert.equal(rows.grpo.requests + rows.sft.requests, 200);
  assert.ok(rows.grpo.requests > 60 && rows.sft.requests > 60, `split ${rows.grpo.requests}/${rows.sft.requests}`);
  assert.equal(rows.grpo.judged, rows.grpo.requests);
  assert.ok(rows.grpo.accuracy_ci95.low < 0.85 && 0.85 < rows.grpo.accuracy_ci95.high, JSON.stringify(rows.grpo));
  assert.ok(rows.sft.accuracy_ci95.low < 0.55 && 0.55 < rows.sft.accuracy_ci95.high, JSON.stringify(rows.sft));
  assert.ok(rows.grpo.latency_ms.p50 !== null && rows.grpo.latency_ms.p95 >= rows.grpo.latency_ms.p50);
  const c = report.body.comparison;
  assert.deepEqual(new Set([c.variant_a, c.variant_b]), new Set(['grpo', 'sft']));
  assert.ok(Math.abs(c.difference) > 0.15 && c.significant_at_0_05, JSON.stringify(c));
});

test('tables changing under 240 concurrent in-flight requests: none fails, each used one whole committed table', async (t) => {
  const { app, table } = setup(t, 5);
  const shapes = [
    {
      variants: [
        { name: 'a', model: 'clinvqa-grpo', weight: 3 },
        { name: 'b', model: 'clinvqa-sft', weight: 1 },
      ],
    },
    {
      variants: [
        { name: 'c', model: 'clinvqa-ft1', weight: 1 },
        { name: 'a', model: 'clinvqa-sft', weight: 0 },
      ],
      sticky_header: 'X-Other',
    },
  ];
  const committed = new Map<number, string>([[1, JSON.stringify(table.current.variants)]]);
  const server = app.listen(0);
  t.after(() => server.close());
  const agent = request(server);
  // Each PUT is sent while the previous wave of 12 requests is still in flight (each "infers" 5 ms).
  const inFlight: Promise<request.Response>[] = [];
  for (let i = 0; i < 20; i++) {
    for (let k = 0; k < 12; k++) {
      const n = i * 12 + k;
      inFlight.push(
        agent
          .post('/fake-vqa')
          .set('X-Client-Id', `c${n % 37}`)
          .set('X-Other', `o${n % 11}`)
          .then((r) => r),
      );
    }
    const res = await agent.put('/admin/ab').send(shapes[i % 2]);
    assert.equal(res.status, 200, res.text);
    committed.set(res.body.version, JSON.stringify(res.body.variants));
  }
  const results = await Promise.all(inFlight);
  const versions = new Set<number>();
  for (const res of results) {
    assert.equal(res.status, 200, res.text);
    versions.add(res.body.version);
    const variants = res.body.variants as { name: string; model: string; weight: number }[];
    assert.equal(JSON.stringify(variants), committed.get(res.body.version), `version ${res.body.version} is a committed table`);
    assert.ok(variants.some((v) => v.name === res.body.variant && v.model === res.body.model && v.weight > 0));
  }
  assert.ok(versions.size >= 10, `in-flight requests spanned ${versions.size} table versions`);
  assert.equal(table.current.version, 21);
});

test('promote sends all traffic to one model; rollback restores the table before it; both audited', async (t) => {
  const { app, audits, ensured, table } = setup(t);
  const base = await request(app)
    .put('/admin/ab')
    .send({
      variants: [
        { name: 'control', model: 'clinvqa-sft', weight: 1 },
        { model: 'clinvqa-grpo', weight: 1 },
      ],
    });
  const promoted = await request(app).post('/admin/models/clinvqa-ft1/promote');
  assert.equal(promoted.status, 200, promoted.text);
  assertContract('POST', '/admin/models/clinvqa-ft1/promote', promoted);
  assert.deepEqual(ensured, ['clinvqa-ft1']);
  assert.equal(promoted.body.promoted, 'clinvqa-ft1');
  assert.deepEqual(
    promoted.body.variants.map((v: { model: string; weight: number }) => [v.model, v.weight]),
    [
      ['clinvqa-sft', 0],
      ['clinvqa-grpo', 0],
      ['clinvqa-ft1', 1],
    ],
  );
  for (let i = 0; i < 50; i++) {
    assert.equal(pickVariant(table.current, `client-${i}`, () => true)!.variant.model, 'clinvqa-ft1');
  }
  assertProblem('POST', '/admin/models/clinvqa-grpo/rollback', await request(app).post('/admin/models/clinvqa-grpo/rollback'), 409, 'conflict');
  assertProblem('POST', '/admin/models/ghost/promote', await request(app).post('/admin/models/ghost/promote'), 404, 'model_not_found');

  const rolled = await request(app).post('/admin/models/clinvqa-ft1/rollback');
  assert.equal(rolled.status, 200, rolled.text);
  assertContract('POST', '/admin/models/clinvqa-ft1/rollback', rolled);
  assert.equal(rolled.body.promoted, null);
  assert.deepEqual(rolled.body.variants, base.body.variants);
  assert.equal(rolled.body.version, base.body.version + 2);
  assert.deepEqual(
    audits.map((a) => [a.action, a.model ?? null, a.previous_version, a.version]),
    [
      ['ab_table.replace', null, 1, 2],
      ['ab_table.promote', 'clinvqa-ft1', 2, 3],
      ['ab_table.rollback', 'clinvqa-ft1', 3, 4],
    ],
  );
  assertProblem('POST', '/admin/models/clinvqa-ft1/rollback', await request(app).post('/admin/models/clinvqa-ft1/rollback'), 409, 'conflict');
});
