import { test } from 'node:test';
import assert from 'node:assert/strict';
import request from 'supertest';
import { assertContract, assertProblem } from '../../helpers/contract.ts';
import { AUTH, makeTestApp } from '../../helpers/test-app.ts';

test('GET /v1/models lists every package with its manifest; id = package directory name', async () => {
  const t = await makeTestApp({ models: ['clinvqa-sft', 'clinvqa-grpo'] });
  try {
    const res = await request(t.clinvqa.app).get('/v1/models').set(AUTH);
    assert.equal(res.status, 200);
    assertContract('GET', '/v1/models', res);
    assert.deepEqual(
      res.body.data.map((m: { id: string }) => m.id),
      ['clinvqa-grpo', 'clinvqa-sft'],
    );
    const sft = res.body.data[1];
    assert.equal(sft.manifest.method, 'sft');
    assert.equal(sft.created, Date.parse('2025-01-31T12:00:00.000Z') / 1000);
    assert.equal(sft.execution_provider, 'cpu');
    const one = await request(t.clinvqa.app).get('/v1/models/clinvqa-grpo').set(AUTH);
    assert.equal(one.status, 200);
    assertContract('GET', '/v1/models/clinvqa-grpo', one);
    assertProblem('GET', '/v1/models/nope', await request(t.clinvqa.app).get('/v1/models/nope').set(AUTH), 404, 'model_not_found');
    assertProblem('GET', '/v1/models', await request(t.clinvqa.app).get('/v1/models'), 401, 'unauthorized');
  } finally {
    await t.cleanup();
  }
});

test('unknown routes are 404 and wrong methods 405, as problem documents', async () => {
  const t = await makeTestApp();
  try {
    const missing = await request(t.clinvqa.app).get('/v2/nothing').set(AUTH);
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'not_found');
    const method = await request(t.clinvqa.app).delete('/v1/vqa').set(AUTH);
    assert.equal(method.status, 405);
    assert.equal(method.body.code, 'method_not_allowed');
  } finally {
    await t.cleanup();
  }
});
