// Load limits over HTTP: dynamic batching of concurrent requests, the bounded queue (503 +
// Retry-After), the per-request timeout (504), and a runtime crash (500 that leaks nothing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import request from 'supertest';
import { assertProblem } from '../helpers/contract.ts';
import { smallPng } from '../helpers/images.ts';
import sharp from 'sharp';
import { ADMIN_AUTH, AUTH, makeTestApp } from '../helpers/test-app.ts';

async function vqa(app: Parameters<typeof request>[0], png: Buffer) {
  return request(app)
    .post('/v1/vqa')
    .set(AUTH)
    .send({ image: png.toString('base64'), question: 'Normal?' });
}

test('concurrent requests are answered in shared batches', async () => {
  const t = await makeTestApp({ behaviour: { delayMs: 60 }, env: { CLINVQA_BATCH_MAX_WAIT_MS: '20' } });
  try {
    const png = await smallPng();
    const results = await Promise.all(Array.from({ length: 8 }, () => vqa(t.clinvqa.app, png)));
    assert.ok(results.every((r) => r.status === 200));
    const batches = t.runtimes[0]!.batches;
    assert.ok(Math.max(...batches) > 1, `batches: ${batches}`);
    assert.equal(
      batches.reduce((a, b) => a + b, 0),
      8,
    );
  } finally {
    await t.cleanup();
  }
});

test('beyond the bounded queue: 503 queue_full with Retry-After; the rest are answered', async () => {
  const t = await makeTestApp({
    behaviour: { delayMs: 150 },
    env: { CLINVQA_MAX_BATCH: '1', CLINVQA_MAX_QUEUE: '2', CLINVQA_BATCH_MAX_WAIT_MS: '0' },
  });
  try {
    const png = await smallPng();
    const results = await Promise.all(Array.from({ length: 7 }, () => vqa(t.clinvqa.app, png)));
    const refused = results.filter((r) => r.status === 503);
    const answered = results.filter((r) => r.status === 200);
    assert.ok(refused.length >= 1, `statuses: ${results.map((r) => r.status)}`);
    assert.ok(answered.length >= 3);
    assert.equal(refused.length + answered.length, 7);
    for (const r of refused) {
      assertProblem('POST', '/v1/vqa', r, 503, 'queue_full');
      assert.ok(Number(r.headers['retry-after']) >= 1);
    }
    assert.equal((await vqa(t.clinvqa.app, png)).status, 200, 'healthy afterwards');
  } finally {
    await t.cleanup();
  }
});

test('a request the model does not answer in time: 504 inference_timeout', async () => {
  const t = await makeTestApp({ behaviour: { delayMs: 400 }, env: { CLINVQA_REQUEST_TIMEOUT_MS: '100' } });
  try {
    const png = await smallPng();
    assertProblem('POST', '/v1/vqa', await vqa(t.clinvqa.app, png), 504, 'inference_timeout');
  } finally {
    await t.cleanup();
  }
});

test('a runtime crash is a 500 problem document that leaks no internals', async () => {
  const t = await makeTestApp({ behaviour: { failWith: new Error('ORT failed at /srv/secret/path/decoder.onnx') } });
  try {
    const png = await smallPng();
    const res = await vqa(t.clinvqa.app, png);
    assertProblem('POST', '/v1/vqa', res, 500, 'internal_error');
    assert.ok(!res.text.includes('secret'));
    assert.ok(!res.text.includes('ORT'));
    assert.equal(res.body.request_id, res.headers['x-request-id']);
    assert.equal((await request(t.clinvqa.app).get('/healthz')).status, 200);
  } finally {
    await t.cleanup();
  }
});

test('a key over its rate limit: 429 rate_limited with Retry-After (problem+json); other keys are unaffected', async () => {
  const t = await makeTestApp({ env: { CLINVQA_RATE_LIMIT_CLINICIAN: '1', CLINVQA_RATE_BURST_CLINICIAN: '2' } });
  try {
    const png = await smallPng();
    assert.equal((await vqa(t.clinvqa.app, png)).status, 200);
    assert.equal((await request(t.clinvqa.app).get('/v1/models').set(AUTH)).status, 200);
    const limited = await vqa(t.clinvqa.app, png);
    assertProblem('POST', '/v1/vqa', limited, 429, 'rate_limited');
    assert.ok(Number(limited.headers['retry-after']) >= 1);
    assertProblem('GET', '/v1/models', await request(t.clinvqa.app).get('/v1/models').set(AUTH), 429, 'rate_limited');
    assert.equal((await request(t.clinvqa.app).get('/v1/models').set(ADMIN_AUTH)).status, 200, 'the admin key has its own bucket');
    assert.equal((await request(t.clinvqa.app).get('/healthz')).status, 200, 'public routes are not limited');
  } finally {
    await t.cleanup();
  }
});

test('large images past their decoding lane: 503 queue_full with Retry-After, while an ordinary image is answered', async () => {
  const t = await makeTestApp({ env: { CLINVQA_DECODE_LARGE_QUEUE: '1', CLINVQA_DECODE_LARGE_BYTES: '1000000', CLINVQA_RATE_LIMIT_CLINICIAN: '0' } });
  try {
    const large = await sharp({ create: { width: 1500, height: 1500, channels: 4, background: { r: 1, g: 2, b: 3, alpha: 1 } } })
      .toColourspace('rgb16')
      .png()
      .toBuffer();
    const burst = Array.from({ length: 6 }, () => vqa(t.clinvqa.app, large));
    const normal = await vqa(t.clinvqa.app, await smallPng());
    assert.equal(normal.status, 200, normal.text);
    const results = await Promise.all(burst);
    const refused = results.filter((r) => r.status === 503);
    assert.ok(refused.length >= 1, `statuses: ${results.map((r) => r.status)}`);
    for (const r of refused) {
      assertProblem('POST', '/v1/vqa', r, 503, 'queue_full');
      assert.ok(Number(r.headers['retry-after']) >= 1);
    }
    assert.ok(results.every((r) => r.status === 200 || r.status === 503));
  } finally {
    await t.cleanup();
  }
});
