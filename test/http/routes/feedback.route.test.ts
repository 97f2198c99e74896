import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import express, { type ErrorRequestHandler } from 'express';
import request from 'supertest';
import { toProblem } from '../../../src/errors.ts';
import { toApiError } from '../../../src/http/error-translation.ts';
import { FeedbackStore, type FeedbackRecord } from '../../../src/feedback/feedback-store.ts';
import { createFeedbackRouter } from '../../../src/http/routes/feedback.route.ts';
import { assertContract, assertProblem } from '../../helpers/contract.ts';

/** Stand-in for the server's error handler: the one translation to an ApiError, then problem+json. */
const renderProblems: ErrorRequestHandler = (error, _req, res, _next) => {
  const apiError = toApiError(error);
  res
    .status(apiError.status)
    .type('application/problem+json')
    .send(JSON.stringify(toProblem(apiError)));
};

function setup(t: { after(fn: () => void): void }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clinvqa-fb-route-'));
  const store = FeedbackStore.open(dir);
  t.after(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const seen: FeedbackRecord[] = [];
  const app = express();
  app.use(createFeedbackRouter({ store, keyIdOf: (req) => req.get('x-test-key-id'), onFeedback: (r) => seen.push(r) }));
  app.use(renderProblems);
  store.recordResponse({ responseId: 'resp-1', model: 'clinvqa-grpo', variant: 'grpo', tableVersion: 2, latencyMs: 80 });
  return { app, store, seen };
}

const SECRET = 'suspected tension pneumothorax right side';

test('POST /v1/feedback stores the verdict and returns the FeedbackRecord without the answer text', async (t) => {
  const { app, store, seen } = setup(t);
  const res = await request(app)
    .post('/v1/feedback')
    .set('x-test-key-id', 'key_0123456789ab')
    .send({ response_id: 'resp-1', correct: false, rating: 2, correct_answer: SECRET });
  assert.equal(res.status, 200, res.text);
  assertContract('POST', '/v1/feedback', res);
  assert.equal(res.body.response_id, 'resp-1');
  assert.equal(res.body.variant, 'grpo');
  assert.equal(res.body.model, 'clinvqa-grpo');
  assert.equal(res.body.correct, false);
  assert.equal(res.body.rating, 2);
  assert.equal(res.text.includes('pneumothorax'), false);
  assert.equal(store.getFeedback('resp-1')!.correctAnswer, SECRET);
  assert.equal(seen.length, 1);
  assert.equal(JSON.stringify(seen).includes('pneumothorax'), false, 'the metrics hook never gets the text');
});

test('sending feedback again replaces it (last wins)', async (t) => {
  const { app, store } = setup(t);
  await request(app).post('/v1/feedback').send({ response_id: 'resp-1', correct: true }).expect(200);
  const res = await request(app).post('/v1/feedback').send({ response_id: 'resp-1', correct: false });
  assert.equal(res.status, 200);
  assert.equal(res.body.correct, false);
  const [stats] = store.variantStats();
  assert.deepEqual([stats!.feedback, stats!.judged, stats!.correct], [1, 1, 0]);
});

test('unknown response id → 404 response_not_found', async (t) => {
  const { app } = setup(t);
  const res = await request(app).post('/v1/feedback').send({ response_id: 'never-issued', correct: true, correct_answer: SECRET });
  assertProblem('POST', '/v1/feedback', res, 404, 'response_not_found');
  assert.equal(res.text.includes('pneumothorax'), false);
});

test('invalid bodies → 400 invalid_request listing the problems, never echoing the answer text', async (t) => {
  const { app, store } = setup(t);
  const bodies: unknown[] = [
    { response_id: 'resp-1' },
    { response_id: 'resp-1', rating: 0 },
    { response_id: 'resp-1', rating: 3.5 },
    { response_id: 'resp-1', correct: 'yes' },
    { response_id: '', correct: true },
    { correct: true },
    { response_id: 'resp-1', correct: true, extra: 1 },
    { response_id: 'resp-1', correct: true, correct_answer: '' },
    { response_id: 'resp-1', correct: true, correct_answer: SECRET.repeat(60) },
    [{ response_id: 'resp-1', correct: true }],
  ];
  for (const body of bodies) {
    const res = await request(app)
      .post('/v1/feedback')
      .send(body as object);
    assertProblem('POST', '/v1/feedback', res, 400, 'invalid_request');
    assert.equal(res.text.includes('pneumothorax'), false);
  }
  assert.equal(store.getFeedback('resp-1'), undefined, 'nothing was stored');
});

test('bad JSON → 400 bad_json; wrong content type → 415; no body → 400; huge body → 413', async (t) => {
  const { app } = setup(t);
  const bad = await request(app).post('/v1/feedback').set('content-type', 'application/json').send('{"response_id": "resp-1",');
  assertProblem('POST', '/v1/feedback', bad, 400, 'bad_json');
  const text = await request(app).post('/v1/feedback').set('content-type', 'text/plain').send('response_id=resp-1');
  assertProblem('POST', '/v1/feedback', text, 415, 'unsupported_media_type');
  const form = await request(app).post('/v1/feedback').type('form').send({ response_id: 'resp-1', correct: 'true' });
  assertProblem('POST', '/v1/feedback', form, 415, 'unsupported_media_type');
  const empty = await request(app).post('/v1/feedback');
  assertProblem('POST', '/v1/feedback', empty, 400, 'invalid_request');
  const huge = await request(app)
    .post('/v1/feedback')
    .send({ response_id: 'resp-1', correct: true, pad: 'x'.repeat(20_000) });
  assert.equal(huge.status, 413);
  assert.equal(huge.body.code ?? JSON.parse(huge.text).code, 'payload_too_large');
});
