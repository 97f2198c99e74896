import { test } from 'node:test';
import assert from 'node:assert/strict';
import request from 'supertest';
import { assertContract, sseEvents } from '../../helpers/contract.ts';
import { dataUrl, smallPng } from '../../helpers/images.ts';
import { AUTH, makeTestApp } from '../../helpers/test-app.ts';

async function chatBody(extra: Record<string, unknown> = {}) {
  const png = await smallPng();
  return {
    messages: [
      { role: 'system', content: 'You are a radiology assistant.' },
      { role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(png, 'image/png') } }, { type: 'text', text: 'Which side is the lesion on?' }] },
    ],
    ...extra,
  };
}

test('non-streaming: OpenAI ChatCompletion with reasoning_content, usage and X-Model-Variant', async () => {
  const t = await makeTestApp();
  try {
    const res = await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).send(await chatBody({ model: 'auto', max_tokens: 50 }));
    assert.equal(res.status, 200, res.text);
    assertContract('POST', '/v1/chat/completions', res);
    assert.equal(res.body.object, 'chat.completion');
    assert.match(res.body.id, /^chatcmpl-/);
    assert.equal(res.body.model, 'clinvqa-sft');
    assert.equal(res.headers['x-model-variant'], 'clinvqa-sft');
    const [choice] = res.body.choices;
    assert.equal(choice.message.role, 'assistant');
    assert.equal(choice.message.content, 'clinvqa-sft answer 6');
    assert.equal(choice.message.reasoning_content, `patches ${4 * 768}`);
    assert.equal(choice.finish_reason, 'stop');
    assert.equal(res.body.usage.total_tokens, res.body.usage.prompt_tokens + res.body.usage.completion_tokens);
    // The completion id is a response id for the feedback loop.
    const fb = await request(t.clinvqa.app).post('/v1/feedback').set(AUTH).send({ response_id: res.body.id, rating: 4 });
    assert.equal(fb.status, 200, fb.text);
  } finally {
    await t.cleanup();
  }
});

test('the question is the last user message; the image may come from an earlier one', async () => {
  const t = await makeTestApp();
  try {
    const png = await smallPng();
    const res = await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).send({
      messages: [
        { role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(png, 'image/png') } }, { type: 'text', text: 'first question here' }] },
        { role: 'assistant', content: 'yes' },
        { role: 'user', content: 'and is it enlarged?' },
      ],
    });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.choices[0].message.content, 'clinvqa-sft answer 4');
  } finally {
    await t.cleanup();
  }
});

test('stream: SSE chunks (role, reasoning, answer, finish, usage) then data: [DONE]', async () => {
  const t = await makeTestApp();
  try {
    const res = await request(t.clinvqa.app)
      .post('/v1/chat/completions')
      .set(AUTH)
      .send(await chatBody({ stream: true, stream_options: { include_usage: true } }))
      .buffer(true)
      .parse((response, done) => {
        let text = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => (text += chunk));
        response.on('end', () => done(null, text));
      });
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/event-stream/);
    (res as unknown as { text: string }).text = res.body as string;
    assertContract('POST', '/v1/chat/completions', res);
    const events = sseEvents(res.body as string);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id for the whole stream');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const reasoning = chunks.map((c) => c.choices[0]?.delta.reasoning_content ?? '').join('');
    const content = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    assert.equal(reasoning, `patches ${4 * 768}`);
    assert.equal(content, 'clinvqa-sft answer 6');
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'stop');
    assert.deepEqual(chunks.at(-1).choices, []);
    assert.equal(chunks.at(-1).usage.completion_tokens, 7);
  } finally {
    await t.cleanup();
  }
});

test('contract violations in chat: no user message, n > 1, bad role → 400', async () => {
  const t = await makeTestApp();
  try {
    const noUser = await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).send({ messages: [{ role: 'system', content: 'hi' }] });
    assert.equal(noUser.status, 400);
    const n2 = await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).send(await chatBody({ n: 2 }));
    assert.equal(n2.status, 400);
    assert.equal(n2.body.error.param, 'n');
    const role = await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).send({ messages: [{ role: 'robot', content: 'hi' }] });
    assert.equal(role.status, 400);
    const noImage = await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).send({ messages: [{ role: 'user', content: 'Is it normal?' }] });
    assert.equal(noImage.status, 400);
    assert.equal(noImage.body.error.code, 'image_missing');
  } finally {
    await t.cleanup();
  }
});
