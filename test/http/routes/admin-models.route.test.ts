import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import request from 'supertest';
import { assertContract, assertProblem } from '../../helpers/contract.ts';
import { smallPng } from '../../helpers/images.ts';
import { ADMIN_AUTH, AUTH, makeTestApp, writeFakePackage } from '../../helpers/test-app.ts';

test('reloading a model under load drops no in-flight request; the old runtime is disposed after', async () => {
  const t = await makeTestApp({ behaviour: { delayMs: 40 }, env: { CLINVQA_MAX_BATCH: '2' } });
  try {
    const png = await smallPng();
    const first = t.runtimes[0]!;
    const inflight = Array.from({ length: 12 }, () =>
      request(t.clinvqa.app)
        .post('/v1/vqa')
        .set(AUTH)
        .send({ image: png.toString('base64'), question: 'Normal?' }),
    );
    const pending = Promise.all(inflight.map((r) => r.then((x) => x)));
    await new Promise((r) => setTimeout(r, 30));
    const reload = await request(t.clinvqa.app).post('/admin/models/clinvqa-sft/load').set(ADMIN_AUTH);
    assert.equal(reload.status, 200, reload.text);
    assertContract('POST', '/admin/models/clinvqa-sft/load', reload);
    // More traffic after the swap goes to the new runtime.
    const after = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .send({ image: png.toString('base64'), question: 'Normal?' });
    const results = await pending;
    assert.deepEqual(
      results.map((r) => r.status),
      Array(12).fill(200),
    );
    assert.equal(after.status, 200);
    assert.equal(t.runtimes.length, 2);
    await t.clinvqa.registry.settled();
    assert.equal(first.disposed, true);
    assert.ok(first.batches.length >= 2, 'the old runtime was still answering when the swap happened');
    assert.equal(t.runtimes[1]!.disposed, false);
    assert.ok(t.runtimes[1]!.batches.length >= 1);
  } finally {
    await t.cleanup();
  }
});

test('load a new package without restart; unload refuses a model the A/B table routes to', async () => {
  const t = await makeTestApp();
  try {
    writeFakePackage(t.modelsDir, 'clinvqa-grpo');
    const loaded = await request(t.clinvqa.app).post('/admin/models/clinvqa-grpo/load').set(ADMIN_AUTH);
    assert.equal(loaded.status, 200, loaded.text);
    const list = await request(t.clinvqa.app).get('/v1/models').set(AUTH);
    assert.deepEqual(
      list.body.data.map((m: { id: string }) => m.id),
      ['clinvqa-grpo', 'clinvqa-sft'],
    );
    // The default table follows the loaded models, so both are routed now.
    const table = await request(t.clinvqa.app).get('/admin/ab').set(ADMIN_AUTH);
    assert.deepEqual(table.body.variants.map((v: { model: string }) => v.model).sort(), ['clinvqa-grpo', 'clinvqa-sft']);
    const refused = await request(t.clinvqa.app).delete('/admin/models/clinvqa-grpo').set(ADMIN_AUTH);
    assertProblem('DELETE', '/admin/models/clinvqa-grpo', refused, 409, 'conflict');
    const put = await request(t.clinvqa.app)
      .put('/admin/ab')
      .set(ADMIN_AUTH)
      .send({ variants: [{ model: 'clinvqa-sft', weight: 1 }] });
    assert.equal(put.status, 200, put.text);
    const unloaded = await request(t.clinvqa.app).delete('/admin/models/clinvqa-grpo').set(ADMIN_AUTH);
    assert.equal(unloaded.status, 204);
    assertProblem(
      'DELETE',
      '/admin/models/clinvqa-grpo',
      await request(t.clinvqa.app).delete('/admin/models/clinvqa-grpo').set(ADMIN_AUTH),
      404,
      'model_not_found',
    );
    assertProblem('POST', '/admin/models/nope/load', await request(t.clinvqa.app).post('/admin/models/nope/load').set(ADMIN_AUTH), 404, 'model_not_found');
  } finally {
    await t.cleanup();
  }
});

test('a package that fails to load is 422 and the model already serving keeps serving', async () => {
  const t = await makeTestApp();
  try {
    writeFileSync(path.join(t.modelsDir, 'clinvqa-sft', 'manifest.json'), '{ not json');
    const res = await request(t.clinvqa.app).post('/admin/models/clinvqa-sft/load').set(ADMIN_AUTH);
    assertProblem('POST', '/admin/models/clinvqa-sft/load', res, 422, 'model_load_failed');
    assert.ok(!res.text.includes(t.modelsDir), 'no server paths in the detail');
    const png = await smallPng();
    const ok = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .send({ image: png.toString('base64'), question: 'Normal?' });
    assert.equal(ok.status, 200);
  } finally {
    await t.cleanup();
  }
});

test('admin actions are audited with the key id, target and outcome', async () => {
  const t = await makeTestApp();
  try {
    await request(t.clinvqa.app).post('/admin/models/clinvqa-sft/load').set(ADMIN_AUTH);
    await request(t.clinvqa.app)
      .put('/admin/ab')
      .set(ADMIN_AUTH)
      .send({ variants: [{ model: 'clinvqa-sft', weight: 2 }] });
    await request(t.clinvqa.app).get('/admin/ab').set(AUTH); // refused: 403, still audited
    await t.clinvqa.audit.close();
    const { readFileSync } = await import('node:fs');
    const lines = readFileSync(path.join(t.dataDir, 'audit', 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      lines.map((l) => [l.action, l.status]),
      [
        ['model_load', 200],
        ['ab_table.replace', 200],
        ['getAbTable', 403],
      ],
    );
    assert.equal(lines[0].target, 'clinvqa-sft');
    assert.equal(lines[1].details.version, 2);
    assert.equal(lines[1].role, 'admin');
    assert.equal(lines[2].role, 'clinician');
  } finally {
    await t.cleanup();
  }
});

test('promoting a package that is not loaded yet loads it, sends it all traffic, and rollback restores the table', async () => {
  const t = await makeTestApp();
  try {
    writeFakePackage(t.modelsDir, 'clinvqa-grpo');
    const promoted = await request(t.clinvqa.app).post('/admin/models/clinvqa-grpo/promote').set(ADMIN_AUTH);
    assert.equal(promoted.status, 200, promoted.text);
    assertContract('POST', '/admin/models/clinvqa-grpo/promote', promoted);
    assert.equal(promoted.body.promoted, 'clinvqa-grpo');
    const png = await smallPng();
    const res = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .send({ image: png.toString('base64'), question: 'Normal?' });
    assert.equal(res.body.model, 'clinvqa-grpo');
    const rolled = await request(t.clinvqa.app).post('/admin/models/clinvqa-grpo/rollback').set(ADMIN_AUTH);
    assert.equal(rolled.status, 200, rolled.text);
    assert.equal(rolled.body.promoted, null);
    assertProblem(
      'POST',
      '/admin/models/nope/promote',
      await request(t.clinvqa.app).post('/admin/models/nope/promote').set(ADMIN_AUTH),
      404,
      'model_not_found',
    );
  } finally {
    await t.cleanup();
  }
});

test('registered packages under <data dir>/models are served beside the shipped ones: loaded at start, loadable, promotable', async () => {
  const errors: Array<{ message: string; fields?: Record<string, unknown> }> = [];
  const logger = {
    debug: () => undefined,
    info: () => undefined,
    warn: () => undefined,
    error: (message: string, fields?: Record<string, unknown>) => void errors.push({ message, ...(fields ? { fields } : {}) }),
  };
  // `clinvqa-sft` is both shipped and registered: a clash, logged, not a crash.
  const t = await makeTestApp({ models: ['clinvqa-sft'], registered: ['clinvqa-sft-ft-0123456789ab', 'clinvqa-sft'], logger });
  try {
    const list = await request(t.clinvqa.app).get('/v1/models').set(AUTH);
    assert.deepEqual(
      list.body.data.map((m: { id: string }) => m.id),
      ['clinvqa-sft', 'clinvqa-sft-ft-0123456789ab'],
    );
    const clash = errors.find((e) => e.message.includes('same id'));
    assert.ok(clash, JSON.stringify(errors));
    assert.equal(clash.fields?.model, 'clinvqa-sft');
    assert.equal(clash.fields?.served, path.join(t.modelsDir, 'clinvqa-sft'), 'the shipped package wins');
    // Reload a registered package.
    const loaded = await request(t.clinvqa.app).post('/admin/models/clinvqa-sft-ft-0123456789ab/load').set(ADMIN_AUTH);
    assert.equal(loaded.status, 200, loaded.text);
    assertContract('POST', '/admin/models/clinvqa-sft-ft-0123456789ab/load', loaded);
    // A package registered after start (as a fine-tune writes it) can be promoted, then rolled back.
    writeFakePackage(path.join(t.dataDir, 'models'), 'clinvqa-sft-ft-fedcba987654');
    const promoted = await request(t.clinvqa.app).post('/admin/models/clinvqa-sft-ft-fedcba987654/promote').set(ADMIN_AUTH);
    assert.equal(promoted.status, 200, promoted.text);
    const png = await smallPng();
    const res = await request(t.clinvqa.app)
      .post('/v1/vqa')
      .set(AUTH)
      .send({ image: png.toString('base64'), question: 'Normal?' });
    assert.equal(res.body.model, 'clinvqa-sft-ft-fedcba987654');
    const rolled = await request(t.clinvqa.app).post('/admin/models/clinvqa-sft-ft-fedcba987654/rollback').set(ADMIN_AUTH);
    assert.equal(rolled.status, 200, rolled.text);
    // Nothing was written into the shipped models directory.
    assert.deepEqual(readdirSync(t.modelsDir), ['clinvqa-sft']);
  } finally {
    await t.cleanup();
  }
});
