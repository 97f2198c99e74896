import { test } from 'node:test';
import assert from 'node:assert/strict';
import request from 'supertest';
import { assertContract } from '../../helpers/contract.ts';
import { smallPng } from '../../helpers/images.ts';
import { AUTH, makeTestApp } from '../../helpers/test-app.ts';

test('/metrics exposes request, inference, batch, token, feedback and process metrics; no patient data', async () => {
  const t = await makeTestApp();
  try {
    const png = await smallPng();
    const question = 'Unique-question-marker present?';
    const ok = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .set('X-Client-Id', 'ward-7')
      .send({ image: png.toString('base64'), question });
    assert.equal(ok.status, 200);
    await request(t.clinvqa.app).post('/v1/feedback').set(AUTH).send({ response_id: ok.body.id, correct: false });
    await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).send({ image: 'bad base64 !!', question });
    const res = await request(t.clinvqa.app).get('/metrics');
    assert.equal(res.status, 200);
    assertContract('GET', '/metrics', res);
    const text = res.text;
    assert.match(text, /clinvqa_http_requests_total\{route="\/v1\/vqa",method="POST",status="200"\} 1/);
    assert.match(text, /clinvqa_http_requests_total\{route="\/v1\/vqa",method="POST",status="400"\} 1/);
    assert.match(text, /clinvqa_http_request_duration_seconds_count\{route="\/v1\/vqa",method="POST",status="200"\} 1/);
    assert.match(text, /clinvqa_inference_duration_seconds_count\{model="clinvqa-sft",variant="clinvqa-sft"\} 1/);
    assert.match(text, /clinvqa_queue_wait_seconds_count\{model="clinvqa-sft",variant="clinvqa-sft"\} 1/);
    assert.match(text, /clinvqa_batch_size_count\{model="clinvqa-sft",variant="clinvqa-sft"\} 1/);
    assert.match(text, /clinvqa_prompt_tokens_total\{model="clinvqa-sft",variant="clinvqa-sft"\} 6/);
    assert.match(text, /clinvqa_completion_tokens_total\{model="clinvqa-sft",variant="clinvqa-sft"\} 7/);
    assert.match(text, /clinvqa_feedback_total\{variant="clinvqa-sft",verdict="incorrect"\} 1/);
    assert.match(text, /clinvqa_queue_depth\{model="clinvqa-sft"\} 0/);
    assert.match(text, /clinvqa_process_cpu_seconds_total/);
    assert.match(text, /clinvqa_nodejs_heap_size_used_bytes/);
    assert.ok(!text.includes('Unique-question-marker'));
    assert.ok(!text.includes('ward-7'), 'client ids are not labels');
    assert.ok(!text.includes(ok.body.answer));
  } finally {
    await t.cleanup();
  }
});
