import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { assertContract } from '../../helpers/contract.ts';
import { dataUrl, realJpeg, smallPng } from '../../helpers/images.ts';
import { AUTH, makeTestApp } from '../../helpers/test-app.ts';

test('multipart upload answers with the VqaResponse shape and X-Model-Variant', async () => {
  const t = await makeTestApp({ models: ['clinvqa-grpo', 'clinvqa-sft'] });
  try {
    const res = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .attach('image', realJpeg, { filename: 'x.jpg', contentType: 'image/jpeg' })
      .field('question', 'Is there a fracture of the left femur?')
      .field('max_tokens', '32')
      .field('temperature', '0.7')
      .field('seed', '42');
    assert.equal(res.status, 200, res.text);
    assertContract('POST', '/v1/vqa', res);
    assert.match(res.body.id, /^vqa-/);
    assert.ok(['clinvqa-grpo', 'clinvqa-sft'].includes(res.body.model));
    assert.equal(res.headers['x-model-variant'], res.body.variant);
    assert.equal(res.body.variant, res.body.model, 'default table: variant named after its model');
    // The fake runtime answers from its inputs: 8 words, 4 patches of 16x16x3 from a 32x32 image.
    assert.equal(res.body.answer, `${res.body.model} answer 8`);
    assert.equal(res.body.reasoning, `patches ${4 * 16 * 16 * 3}`);
    assert.deepEqual(res.body.usage, { prompt_tokens: 4 + 8, completion_tokens: 7, total_tokens: 19 });
    assert.ok(res.body.timings.total_ms >= res.body.timings.preprocess_ms);
    assert.match(String(res.headers['x-request-id']), /^req_/);
  } finally {
    await t.cleanup();
  }
});

test('JSON with base64 or a data: URL; model override is labelled "override"; params reach the runtime', async () => {
  const t = await makeTestApp({ models: ['clinvqa-grpo', 'clinvqa-sft'] });
  try {
    const png = await smallPng();
    for (const image of [png.toString('base64'), dataUrl(png, 'image/png')]) {
      const res = await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).send({ image, question: 'What organ is shown?', model: 'clinvqa-sft', max_tokens: 3 });
      assert.equal(res.status, 200, res.text);
      assertContract('POST', '/v1/vqa', res);
      assert.equal(res.body.model, 'clinvqa-sft');
      assert.equal(res.body.variant, 'override');
      assert.equal(res.headers['x-model-variant'], 'override');
      assert.equal(res.body.finish_reason, 'length', 'max_tokens 3 < 7 → the fake stops for length');
      assert.equal(res.body.usage.completion_tokens, 3);
    }
  } finally {
    await t.cleanup();
  }
});

test('a client id keeps its variant while the table is unchanged', async () => {
  const t = await makeTestApp({ models: ['clinvqa-grpo', 'clinvqa-sft'] });
  try {
    const png = await smallPng();
    const seen = new Map<string, Set<string>>();
    for (let i = 0; i < 36; i++) {
      const client = `ward-${i % 12}`;
      const res = await request(t.clinvqa.app)
        .post('/v1/vqa')
        .set(AUTH)
        .set('X-Client-Id', client)
        .send({ image: png.toString('base64'), question: 'Normal?' });
      assert.equal(res.status, 200, res.text);
      if (!seen.has(client)) seen.set(client, new Set());
      seen.get(client)!.add(res.body.variant);
    }
    for (const variants of seen.values()) assert.equal(variants.size, 1);
    // Twelve clients over two equal arms (the hash is fixed, so this is deterministic): both arms used.
    const all = new Set([...seen.values()].flatMap((s) => [...s]));
    assert.deepEqual([...all].sort(), ['clinvqa-grpo', 'clinvqa-sft']);
  } finally {
    await t.cleanup();
  }
});

test('every answer is recorded for feedback, and feedback on it is accepted', async () => {
  const t = await makeTestApp();
  try {
    const png = await smallPng();
    const res = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .send({ image: png.toString('base64'), question: 'Normal?' });
    assert.equal(res.status, 200);
    const fb = await request(t.clinvqa.app).post('/v1/feedback').set(AUTH).send({ response_id: res.body.id, correct: true });
    assert.equal(fb.status, 200, fb.text);
    assertContract('POST', '/v1/feedback', fb);
    assert.equal(fb.body.variant, res.body.variant);
  } finally {
    await t.cleanup();
  }
});

test('the audit log has one line per inference with the image hash and no patient data', async () => {
  const t = await makeTestApp();
  try {
    const question = 'Is the distinctive-question-text visible?';
    const ok = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .set('X-Request-Id', 'trace-12345678')
      .attach('image', realJpeg, 'a.jpg')
      .field('question', question);
    assert.equal(ok.status, 200);
    const bad = await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).attach('image', Buffer.from('not an image at all'), 'a.jpg').field('question', question);
    assert.equal(bad.status, 415);
    await t.clinvqa.audit.close();
    const text = readFileSync(path.join(t.dataDir, 'audit', 'audit.jsonl'), 'utf8');
    assert.ok(!text.includes('distinctive'), 'no question text');
    assert.ok(!text.includes(ok.body.answer), 'no answer text');
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, 2);
    const { createHash } = await import('node:crypto');
    assert.equal(lines[0].image_sha256, createHash('sha256').update(realJpeg).digest('hex'));
    assert.equal(lines[0].request_id, 'trace-12345678');
    assert.equal(lines[0].route, '/v1/vqa');
    assert.equal(lines[0].status, 200);
    assert.equal(lines[0].model, 'clinvqa-sft');
    assert.equal(lines[0].variant, 'clinvqa-sft');
    assert.match(lines[0].key_id, /^key_[0-9a-f]{12}$/);
    assert.equal(lines[1].status, 415);
    assert.equal(lines[1].image_sha256, createHash('sha256').update('not an image at all').digest('hex'));
  } finally {
    await t.cleanup();
  }
});
