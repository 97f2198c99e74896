import { test } from 'node:test';
import assert from 'node:assert/strict';
import request from 'supertest';
import { assertContract, assertProblem } from '../../helpers/contract.ts';
import { makeTestApp } from '../../helpers/test-app.ts';

test('healthz and readyz need no key; readyz lists the loaded models', async () => {
  const t = await makeTestApp({ models: ['clinvqa-grpo', 'clinvqa-sft'] });
  try {
    const live = await request(t.clinvqa.app).get('/healthz');
    assert.equal(live.status, 200);
    assertContract('GET', '/healthz', live);
    const ready = await request(t.clinvqa.app).get('/readyz');
    assert.equal(ready.status, 200);
    assertContract('GET', '/readyz', ready);
    assert.deepEqual(ready.body.models, ['clinvqa-grpo', 'clinvqa-sft']);
    t.clinvqa.startDraining();
    const draining = await request(t.clinvqa.app).get('/readyz');
    assertProblem('GET', '/readyz', draining, 503, 'not_ready');
    assert.equal(draining.headers.connection, 'close');
  } finally {
    await t.cleanup();
  }
});

test('readyz is 503 while no model is loaded', async () => {
  const t = await makeTestApp({ models: [] });
  try {
    const res = await request(t.clinvqa.app).get('/readyz');
    assertProblem('GET', '/readyz', res, 503, 'not_ready');
    assert.ok(Number(res.headers['retry-after']) >= 1);
  } finally {
    await t.cleanup();
  }
});
