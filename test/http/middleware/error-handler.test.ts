// The OpenAI-compatible routes answer errors in OpenAI's shape, checked through the official
// `openai` SDK against a listening server: the SDK's error carries the real message, code, type
// and param, as a client of OpenAI's own API would see them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express from 'express';
import OpenAI from 'openai';
import request from 'supertest';
import { silentLogger } from '../../../src/audit/logger.ts';
import { ApiError } from '../../../src/errors.ts';
import { errorHandler } from '../../../src/http/middleware/error-handler.ts';
import { requestId } from '../../../src/http/middleware/request-id.ts';
import { assertContract, spec } from '../../helpers/contract.ts';
import { dataUrl, smallPng } from '../../helpers/images.ts';
import { ADMIN_KEY, CLINICIAN_KEY, makeTestApp, type TestApp } from '../../helpers/test-app.ts';

const MAX_IMAGE_BYTES = 64 * 1024;
let t: TestApp;
let server: Server;
let baseURL: string;
let png: Buffer;

before(async () => {
  // One request at a time, a queue of one and a slow model: a burst overflows the queue.
  t = await makeTestApp({
    behaviour: { delayMs: 300 },
    env: { CLINVQA_MAX_IMAGE_BYTES: String(MAX_IMAGE_BYTES), CLINVQA_MAX_BATCH: '1', CLINVQA_MAX_QUEUE: '1' },
  });
  server = t.clinvqa.app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  png = await smallPng();
});
after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await t.cleanup();
});

const client = (apiKey = CLINICIAN_KEY) => new OpenAI({ baseURL, apiKey, maxRetries: 0 });

function question(text = 'Is there a fracture?', extra: Record<string, unknown> = {}): OpenAI.ChatCompletionCreateParamsNonStreaming {
  return {
    model: 'auto',
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: dataUrl(png, 'image/png') } },
          { type: 'text', text },
        ],
      },
    ],
    ...extra,
  } as OpenAI.ChatCompletionCreateParamsNonStreaming;
}

async function apiError(call: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof OpenAI.APIError, `expected an APIError, got ${String(error)}`);
    return error;
  }
  assert.fail('the call succeeded');
}

test('a good request still works through the SDK', async () => {
  const reply = await client().chat.completions.create(question());
  assert.equal(reply.choices[0]!.message.content, 'clinvqa-sft answer 4');
  const models = await client().models.list();
  assert.deepEqual(
    models.data.map((m) => m.id),
    ['clinvqa-sft'],
  );
});

test('401: an unknown key → AuthenticationError with the real message', async () => {
  const e = await apiError(client('not-a-key-0123456789').chat.completions.create(question()));
  assert.ok(e instanceof OpenAI.AuthenticationError);
  assert.equal(e.status, 401);
  assert.equal(e.message, '401 The API key is not recognised.');
  assert.equal(e.code, 'unauthorized');
  assert.equal(e.type, 'authentication_error');
  assert.equal(e.param, null);
  assert.match(String(e.headers?.get('www-authenticate')), /^Bearer/);
  assert.ok(e.requestID, 'the request id reaches the SDK');
  const models = await apiError(client('not-a-key-0123456789').models.list());
  assert.equal(models.status, 401);
  assert.equal(models.code, 'unauthorized');
});

test('400: a contract violation names the field in `param`', async () => {
  const e = await apiError(client().chat.completions.create(question('Is it normal?', { n: 2 })));
  assert.ok(e instanceof OpenAI.BadRequestError);
  assert.equal(e.status, 400);
  assert.equal(e.code, 'invalid_request');
  assert.equal(e.type, 'invalid_request_error');
  assert.equal(e.param, 'n');
  assert.match(e.message, /^400 The request does not match the API contract: \/n must be <= 1\.$/);
  const nested = await apiError(
    client().chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: [{ type: 'text', text: 42 }] }] } as never),
  );
  assert.equal(nested.param, 'messages[0].content[0].text');
  const noImage = await apiError(client().chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'Is it normal?' }] }));
  assert.equal(noImage.code, 'image_missing');
  assert.match(noImage.message, /^400 No image: add an image_url part/);
  // The fake model reads at most 64 words of question.
  const long = await apiError(client().chat.completions.create(question(Array.from({ length: 70 }, () => 'word').join(' '))));
  assert.equal(long.code, 'context_length_exceeded');
  assert.equal(long.message, '400 The question is 70 tokens long; model "clinvqa-sft" reads at most 64 tokens of question. Shorten the question.');
  const system = await apiError(
    client().chat.completions.create({ ...question(), messages: [{ role: 'system', content: 'Be brief.' }, ...question().messages] }),
  );
  assert.equal(system.code, 'unsupported_parameter');
  assert.equal(system.param, 'messages[0]');
});

test('404: an unknown model → NotFoundError, code model_not_found, on chat and on models.retrieve', async () => {
  const chat = await apiError(client().chat.completions.create(question('Is it normal?', { model: 'no-such-model' })));
  assert.ok(chat instanceof OpenAI.NotFoundError);
  assert.equal(chat.code, 'model_not_found');
  assert.equal(chat.type, 'not_found_error');
  assert.match(chat.message, /^404 No model "no-such-model" is loaded/);
  const retrieve = await apiError(client().models.retrieve('no-such-model'));
  assert.equal(retrieve.status, 404);
  assert.equal(retrieve.code, 'model_not_found');
});

test('413: a body over the limit → 413 with the limit in the message', async () => {
  const big = Buffer.alloc(MAX_IMAGE_BYTES * 3, 1);
  const e = await apiError(
    client().chat.completions.create({
      model: 'auto',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: dataUrl(big) } },
            { type: 'text', text: 'Normal?' },
          ],
        },
      ],
    }),
  );
  assert.equal(e.status, 413);
  assert.equal(e.code, 'payload_too_large');
  assert.equal(e.type, 'invalid_request_error');
  assert.match(e.message, /^413 The body is larger than the limit of \d+ bytes\.$/);
});

test('503: a full queue → InternalServerError with Retry-After, code queue_full', async () => {
  const calls = Array.from({ length: 4 }, () =>
    client()
      .chat.completions.create(question())
      .then(
        () => undefined,
        (error: unknown) => error,
      ),
  );
  const outcomes = await Promise.all(calls);
  const full = outcomes.filter((o): o is InstanceType<typeof OpenAI.APIError> => o instanceof OpenAI.APIError);
  assert.ok(full.length >= 1, 'at least one request overflowed the queue');
  for (const e of full) {
    assert.equal(e.status, 503);
    assert.equal(e.code, 'queue_full');
    assert.equal(e.type, 'server_error');
    assert.match(e.message, /^503 Too many requests are waiting for this model; retry later\.$/);
    assert.match(String(e.headers?.get('retry-after')), /^\d+$/);
  }
});

test('errors raised by any middleware on an OpenAI-compatible path get its shape; the rest of the API keeps RFC 7807', async () => {
  // Whatever raises them (a rate limiter, a preprocessing queue, a role check), the shape is
  // decided at the one error edge by the route.
  const app = express();
  app.use(requestId());
  app.post('/v1/chat/completions', (_req, _res, next) => next(ApiError.of('forbidden', 'This route needs a key with role clinician.')));
  app.get('/v1/models', (_req, _res, next) => next(ApiError.of('not_ready', 'Warming up.', { headers: { 'Retry-After': '3' } })));
  app.post('/v1/vqa', (_req, _res, next) => next(ApiError.of('forbidden', 'No.')));
  app.use(errorHandler(silentLogger, { errorFormatOf: (p) => spec.errorFormatOf(p) }));
  const listening = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => listening.once('listening', () => resolve()));
  try {
    const local = new OpenAI({ baseURL: `http://127.0.0.1:${(listening.address() as AddressInfo).port}/v1`, apiKey: ADMIN_KEY, maxRetries: 0 });
    const forbidden = await apiError(local.chat.completions.create(question()));
    assert.ok(forbidden instanceof OpenAI.PermissionDeniedError);
    assert.equal(forbidden.message, '403 This route needs a key with role clinician.');
    assert.equal(forbidden.type, 'permission_error');
    assert.equal(forbidden.code, 'forbidden');
    const notReady = await apiError(local.models.list());
    assert.equal(notReady.status, 503);
    assert.equal(notReady.code, 'not_ready');
    assert.equal(notReady.headers?.get('retry-after'), '3');
    const vqa = await request(app).post('/v1/vqa');
    assert.equal(vqa.status, 403);
    assert.match(String(vqa.headers['content-type']), /^application\/problem\+json/);
    assert.equal(vqa.body.code, 'forbidden');
    assertContract('POST', '/v1/vqa', vqa);
  } finally {
    await new Promise<void>((resolve) => listening.close(() => resolve()));
  }
});

test('a wrong method on an OpenAI-compatible path is answered in its shape too; an unknown path keeps RFC 7807', async () => {
  const wrong = await request(t.clinvqa.app).get('/v1/chat/completions').set('Authorization', `Bearer ${CLINICIAN_KEY}`);
  assert.equal(wrong.status, 405);
  assert.match(String(wrong.headers['content-type']), /^application\/json/);
  assert.deepEqual(wrong.body, {
    error: { message: 'GET is not allowed on /v1/chat/completions.', type: 'invalid_request_error', param: null, code: 'method_not_allowed' },
  });
  const unknown = await request(t.clinvqa.app).get('/v1/nothing-here').set('Authorization', `Bearer ${CLINICIAN_KEY}`);
  assert.equal(unknown.status, 404);
  assert.match(String(unknown.headers['content-type']), /^application\/problem\+json/);
});

test('every error response on the OpenAI-compatible routes is declared in OpenAI shape in the contract', () => {
  const openAiOps = spec.operations().filter((op) => spec.errorFormatOf(op.template.replace(/\{[^}]+\}/g, 'x')) === 'openai');
  assert.deepEqual(openAiOps.map((op) => op.template).sort(), ['/v1/chat/completions', '/v1/models', '/v1/models/{id}']);
  for (const op of openAiOps) {
    const responses = op.raw.responses as Record<string, unknown>;
    for (const status of Object.keys(responses).filter((s) => s !== '200')) {
      const code = status === 'default' ? 500 : Number(status);
      assert.ok(spec.responseSchema(op, code, 'application/json'), `${op.method} ${op.template} ${status} has an OpenAI-shaped body`);
      assert.equal(spec.responseSchema(op, code, 'application/problem+json'), undefined, `${op.method} ${op.template} ${status}`);
    }
  }
});
