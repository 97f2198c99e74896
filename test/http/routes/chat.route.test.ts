import { test } from 'node:test';
import assert from 'node:assert/strict';
import request from 'supertest';
import { assertContract, assertProblem, sseEvents } from '../../helpers/contract.ts';
import { dataUrl, smallPng } from '../../helpers/images.ts';
import { AUTH, makeTestApp } from '../../helpers/test-app.ts';

async function chatBody(extra: Record<string, unknown> = {}) {
  const png = await smallPng();
  return {
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: dataUrl(png, 'image/png') } },
          { type: 'text', text: 'Which side is the lesion on?' },
        ],
      },
    ],
    ...extra,
  };
}

test('non-streaming: OpenAI ChatCompletion with reasoning_content, usage and X-Model-Variant', async () => {
  const t = await makeTestApp();
  try {
    const res = await request(t.clinvqa.app)
      .post('/v1/chat/completions')
      .set(AUTH)
      .send(await chatBody({ model: 'auto', max_tokens: 50 }));
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

test("the question is the user message's text parts joined; no-op values of OpenAI parameters are accepted", async () => {
  const t = await makeTestApp();
  try {
    const png = await smallPng();
    const res = await request(t.clinvqa.app)
      .post('/v1/chat/completions')
      .set(AUTH)
      .send({
        messages: [
          { role: 'system', content: '' },
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Is the' },
              { type: 'image_url', image_url: { url: dataUrl(png, 'image/png'), detail: 'auto' } },
              { type: 'text', text: 'heart enlarged?' },
            ],
          },
        ],
        n: 1,
        logprobs: false,
        presence_penalty: 0,
        frequency_penalty: 0,
        max_tokens: 50,
        max_completion_tokens: 50,
      });
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.choices[0].message.content, 'clinvqa-sft answer 4');
  } finally {
    await t.cleanup();
  }
});

test('nothing in a chat request is silently ignored: instructions, earlier turns, a second image, unknown fields → 400 naming them', async () => {
  const t = await makeTestApp();
  try {
    const png = await smallPng();
    const image = { type: 'image_url', image_url: { url: dataUrl(png, 'image/png') } };
    const user = { role: 'user', content: [image, { type: 'text', text: 'Is there a fracture?' }] };
    const refused = async (body: Record<string, unknown>, code: string, param: string, message: RegExp) => {
      const res = await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).send(body);
      assertProblem('POST', '/v1/chat/completions', res, 400, code);
      assert.equal(res.body.error.param, param, res.text);
      assert.match(res.body.error.message, message);
    };
    await refused(
      { messages: [{ role: 'system', content: 'You are a radiology assistant.' }, user] },
      'unsupported_parameter',
      'messages[0]',
      /system messages are not supported/,
    );
    await refused(
      { messages: [{ role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] }, user] },
      'unsupported_parameter',
      'messages[0]',
      /developer messages are not supported/,
    );
    await refused(
      { messages: [user, { role: 'assistant', content: 'No.' }, { role: 'user', content: 'And the ribs?' }] },
      'unsupported_parameter',
      'messages[1]',
      /earlier turns are not supported/,
    );
    await refused(
      { messages: [user, { role: 'user', content: 'And the ribs?' }] },
      'unsupported_parameter',
      'messages[0]',
      /only one user message is answered/,
    );
    await refused(
      { messages: [{ role: 'user', content: [image, { type: 'text', text: 'Which is worse?' }, image] }] },
      'unsupported_parameter',
      'messages[0].content[2]',
      /one image per request/,
    );
    await refused({ messages: [user], max_tokens: 10, max_completion_tokens: 20 }, 'unsupported_parameter', 'max_tokens', /disagree/);
    await refused({ messages: [user], stop: ['\n'] }, 'invalid_request', 'stop', /\/stop is not an allowed property/);
    await refused(
      { messages: [user], tools: [{ type: 'function', function: { name: 'f' } }] },
      'invalid_request',
      'tools',
      /\/tools is not an allowed property/,
    );
    await refused({ messages: [user], logprobs: true }, 'invalid_request', 'logprobs', /must be false/);
    await refused({ messages: [user], n: 2 }, 'invalid_request', 'n', /must be <= 1/);
    await refused({ messages: [{ ...user, name: 'dr_x' }] }, 'invalid_request', 'messages[0].name', /is not an allowed property/);
    await refused(
      {
        messages: [
          {
            role: 'user',
            content: [
              { ...image, image_url: { ...image.image_url, detail: 'high' } },
              { type: 'text', text: 'q' },
            ],
          },
        ],
      },
      'invalid_request',
      'messages[0].content[0].image_url.detail',
      /must be "auto"/,
    );
    assert.deepEqual(t.runtimes[0]!.batches, [], 'no refused request reached the model');
  } finally {
    await t.cleanup();
  }
});

test("a question longer than the model's context → 400 context_length_exceeded with both counts, on chat and on /v1/vqa", async () => {
  const t = await makeTestApp({ behaviour: { maxPromptTokens: 8 } });
  try {
    const png = await smallPng();
    const question = 'Given the long history described here, is there any sign of a fracture?';
    const chat = await request(t.clinvqa.app)
      .post('/v1/chat/completions')
      .set(AUTH)
      .send({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image_url', image_url: { url: dataUrl(png, 'image/png') } },
              { type: 'text', text: question },
            ],
          },
        ],
      });
    assertProblem('POST', '/v1/chat/completions', chat, 400, 'context_length_exceeded');
    assert.equal(chat.body.error.message, 'The question is 13 tokens long; model "clinvqa-sft" reads at most 8 tokens of question. Shorten the question.');
    const vqa = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .send({ image: png.toString('base64'), question });
    assertProblem('POST', '/v1/vqa', vqa, 400, 'context_length_exceeded');
    assert.equal(vqa.body.prompt_tokens, 13);
    assert.equal(vqa.body.max_prompt_tokens, 8);
    assert.match(vqa.body.detail, /13 tokens long.*at most 8 tokens/);
    assert.deepEqual(t.runtimes[0]!.batches, []);
    const ok = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .send({ image: png.toString('base64'), question: 'Is there a fracture?' });
    assert.equal(ok.status, 200, ok.text);
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
    const noUser = await request(t.clinvqa.app)
      .post('/v1/chat/completions')
      .set(AUTH)
      .send({ messages: [{ role: 'system', content: 'hi' }] });
    assert.equal(noUser.status, 400);
    const n2 = await request(t.clinvqa.app)
      .post('/v1/chat/completions')
      .set(AUTH)
      .send(await chatBody({ n: 2 }));
    assert.equal(n2.status, 400);
    assert.equal(n2.body.error.param, 'n');
    const role = await request(t.clinvqa.app)
      .post('/v1/chat/completions')
      .set(AUTH)
      .send({ messages: [{ role: 'robot', content: 'hi' }] });
    assert.equal(role.status, 400);
    const noImage = await request(t.clinvqa.app)
      .post('/v1/chat/completions')
      .set(AUTH)
      .send({ messages: [{ role: 'user', content: 'Is it normal?' }] });
    assert.equal(noImage.status, 400);
    assert.equal(noImage.body.error.code, 'image_missing');
  } finally {
    await t.cleanup();
  }
});
