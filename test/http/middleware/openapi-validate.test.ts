import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import request from 'supertest';
import { assertProblem, spec } from '../../helpers/contract.ts';
import { dataUrl, smallPng } from '../../helpers/images.ts';
import { ADMIN_AUTH, AUTH, makeTestApp, type TestApp } from '../../helpers/test-app.ts';

let t: TestApp;
before(async () => {
  t = await makeTestApp();
});
after(async () => t.cleanup());

const withPathParams = spec.operations().filter((op) => op.pathParams.size > 0);

function call(method: string, url: string) {
  const agent = request(t.clinvqa.app);
  return method === 'GET' ? agent.get(url) : method === 'POST' ? agent.post(url) : method === 'DELETE' ? agent.delete(url) : agent.put(url);
}

test('every path parameter is checked against its contract schema: 400 naming it, after authentication', async () => {
  assert.ok(withPathParams.length >= 8, 'the contract has routes with path parameters');
  for (const op of withPathParams) {
    // A leading dot breaks both id patterns (model ids, fine-tune job ids).
    const url = op.template.replace(/\{[A-Za-z0-9_]+\}/g, '.hidden');
    const res = await call(op.method, url).set(ADMIN_AUTH);
    assertProblem(op.method, url, res, 400, 'invalid_request');
    if (spec.errorFormatOf(url) === 'openai') {
      assert.equal(res.body.error.param, 'id');
      assert.match(res.body.error.message, /\/path\/id must match the pattern/);
    } else {
      assert.deepEqual(
        res.body.errors.map((e: { path: string }) => e.path),
        [...op.pathParams.keys()].map((name) => `/path/${name}`),
        `${op.method} ${op.template}`,
      );
      assert.match(res.body.detail, /\/path\/id must match the pattern/);
    }
    // Without a key the answer is 401, not a hint about which ids are well-formed.
    assertProblem(op.method, url, await call(op.method, url), 401, 'unauthorized');
  }
});

test('a path parameter that decodes to a traversal is refused too; a well-formed unknown id is still 404', async () => {
  assertProblem(
    'POST',
    '/admin/models/..%2Fclinvqa-sft/load',
    await request(t.clinvqa.app).post('/admin/models/..%2Fclinvqa-sft/load').set(ADMIN_AUTH),
    400,
    'invalid_request',
  );
  assertProblem(
    'POST',
    '/admin/models/no-such-model/load',
    await request(t.clinvqa.app).post('/admin/models/no-such-model/load').set(ADMIN_AUTH),
    404,
    'model_not_found',
  );
  assertProblem('GET', '/v1/models/no-such-model', await request(t.clinvqa.app).get('/v1/models/no-such-model').set(AUTH), 404, 'model_not_found');
});

test('a chat message with too many content parts says so, not "must be string"', async () => {
  const png = await smallPng();
  const parts = [
    { type: 'image_url', image_url: { url: dataUrl(png, 'image/png') } },
    ...Array.from({ length: 16 }, () => ({ type: 'text', text: 'Is it normal?' })),
  ];
  const res = await request(t.clinvqa.app)
    .post('/v1/chat/completions')
    .set(AUTH)
    .send({ messages: [{ role: 'user', content: parts }] });
  assert.equal(res.status, 400, res.text);
  assert.match(res.text, /messages\/0\/content must have at most 16 items/);
  assert.doesNotMatch(res.text, /must be string/);
});
