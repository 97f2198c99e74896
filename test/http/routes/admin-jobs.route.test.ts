// POST/GET /admin/fine-tunes… through the real app (auth, error handler, audit trail) with fake
// serving runtimes: every malformed request is a problem document at once; an upload whose content is
// bad is accepted, then its job fails listing each problem with its line; events as JSON and SSE.
// (Valid uploads that really train are in test/jobs/fine-tune-e2e.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { createApp } from '../../../src/app.ts';
import { MemoryAuditSink } from '../../../src/audit/audit-log.ts';
import { silentLogger } from '../../../src/audit/logger.ts';
import { loadConfig } from '../../../src/config.ts';
import { createFineTunes } from '../../../src/jobs/fine-tunes.ts';
import { fakeLoader } from '../../helpers/fake-runtime.ts';
import { ADMIN_AUTH, ADMIN_KEY, AUTH, CLINICIAN_KEY, writeFakePackage } from '../../helpers/test-app.ts';
import { writeTarArchive } from '../../jobs/support/tar-writer.ts';

const IMAGES = 'test/fixtures/vqa/images';
const JSONL = readFileSync('test/fixtures/vqa/vqa-rad.jsonl');

async function setup(t: { after(fn: () => Promise<void> | void): void }) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-ft-route-'));
  const dataDir = path.join(root, 'var');
  const modelsDir = path.join(root, 'models');
  writeFakePackage(modelsDir, 'clinvqa-sft');
  const config = loadConfig({ CLINVQA_API_KEYS: `clinician:${CLINICIAN_KEY},admin:${ADMIN_KEY}`, CLINVQA_DATA_DIR: dataDir, CLINVQA_MODELS_DIR: modelsDir });
  const fineTunes = createFineTunes({ dataDir, modelsDir, standardValidation: [], limits: { maxImageBytes: 200_000, maxFiles: 40, minCases: 2 } });
  const audit = new MemoryAuditSink();
  const app = await createApp({ config, loader: fakeLoader(), logger: silentLogger, audit, extraRouters: (parts) => fineTunes.routers(parts) });
  await fineTunes.started;
  t.after(async () => {
    await fineTunes.close();
    await app.close();
    rmSync(root, { recursive: true, force: true });
  });
  return { app: app.app, audit, fineTunes, dataDir };
}

function withImages(req: request.Test, names = readdirSync(IMAGES)): request.Test {
  for (const name of names) req = req.attach('images', readFileSync(path.join(IMAGES, name)), name);
  return req;
}

function assertProblem(res: request.Response, status: number, paths: string[] = []): void {
  assert.equal(res.status, status, res.text);
  assert.match(String(res.headers['content-type']), /application\/problem\+json/);
  assert.equal(res.body.status, status);
  for (const p of paths) assert.ok((res.body.errors as { path: string }[]).some((e) => e.path === p), `expected a problem at ${p}: ${res.text}`);
}

async function waitForStatus(app: Parameters<typeof request>[0], id: string, status: string) {
  for (let i = 0; i < 100; i++) {
    const res = await request(app).get(`/admin/fine-tunes/${id}`).set(ADMIN_AUTH);
    if (res.body.status === status) return res.body;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`job ${id} never became ${status}`);
}

test('malformed requests are refused at once with every problem listed', async (t) => {
  const { app } = await setup(t);
  const post = () => request(app).post('/admin/fine-tunes');

  assert.equal((await post().field('base_model', 'clinvqa-sft')).status, 401);
  assertProblem(await post().set(AUTH).field('base_model', 'clinvqa-sft'), 403);
  assertProblem(await post().set(ADMIN_AUTH).send({ base_model: 'clinvqa-sft' }), 415);

  // no training file, no images, bad fractions, bad hyperparameters — all in one answer
  assertProblem(
    await post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').field('validation_fraction', '1.5').field('canary_weight', '0')
      .field('hyperparameters', JSON.stringify({ max_steps: -1, learning_rate: 'fast', out: '/etc', nonsense: 1 })),
    422,
    ['/training_file', '/validation_fraction', '/canary_weight', '/hyperparameters/max_steps', '/hyperparameters/learning_rate', '/hyperparameters/out', '/hyperparameters/nonsense'],
  );
  assertProblem(await post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').field('hyperparameters', '{not json').attach('training_file', JSONL, 'a.jsonl').attach('images', Buffer.from('x'), 'a.jpg'), 422, ['/hyperparameters']);
  assertProblem(await post().set(ADMIN_AUTH).attach('training_file', JSONL, 'a.jsonl').attach('images', Buffer.from('x'), 'a.jpg'), 422, ['/base_model']);
  assertProblem(await post().set(ADMIN_AUTH).field('base_model', 'no-such-model').attach('training_file', JSONL, 'a.jsonl').attach('images', Buffer.from('x'), 'a.jpg'), 422, ['/base_model']);
  // path traversal and duplicates in image names (form-data keeps the directories of `filepath`)
  assertProblem(await post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('training_file', JSONL, 'a.jsonl').attach('images', Buffer.from('x'), { filepath: '../../etc/passwd' } as unknown as string), 422, ['/images/0']);
  assertProblem(await post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('training_file', JSONL, 'a.jsonl').attach('images', Buffer.from('x'), 'a.jpg').attach('images', Buffer.from('y'), 'a.jpg'), 422, ['/images/1']);
  // images and an archive together; an unknown file part
  assertProblem(await post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('archive', writeTarArchive([]), 'a.tar').attach('images', Buffer.from('x'), 'a.jpg'), 422, ['/archive']);
  assertProblem(await post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('weights', Buffer.from('x'), 'w.bin'), 422);
  // archives: a symbolic link, and a path escaping the upload
  const link = writeTarArchive([{ path: 'cases.jsonl', data: JSONL }, { path: 'images/x.jpg', data: Buffer.alloc(0), type: '2' }]);
  assertProblem(await post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('archive', link, 'a.tar'), 422, ['/archive']);
  const escape = writeTarArchive([{ path: 'cases.jsonl', data: JSONL }, { path: '../x.jpg', data: Buffer.from('x') }]);
  assertProblem(await post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('archive', gzipSync(escape), 'a.tar.gz'), 422, ['/archive']);
  // an image part over the byte limit (200 kB here), and more parts than allowed
  const huge = await post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('training_file', JSONL, 'a.jsonl').attach('images', Buffer.alloc(300_000), 'big.jpg');
  assertProblem(huge, 413);
  let many = post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('training_file', JSONL, 'a.jsonl');
  for (let i = 0; i < 45; i++) many = many.attach('images', Buffer.from('x'), `i${i}.jpg`);
  assertProblem(await many, 413);

  // nothing of the above became a job
  const list = await request(app).get('/admin/fine-tunes').set(ADMIN_AUTH);
  assert.equal(list.status, 200);
  assert.deepEqual(list.body.data, []);
});

test('an upload with bad content is accepted, then its job fails with every problem and its line', async (t) => {
  const { app, audit, dataDir } = await setup(t);
  const lines = JSONL.toString('utf8').trimEnd().split('\n');
  const bad = [
    lines[0], // 1: fine
    '{"id": "x1", "image": "images/synpic29265.jpg", "question": "Is it?"}', // 2: no answer
    '{not json', // 3
    '{"id": "x2", "image": "../secret.jpg", "question": "Q?", "answer": "yes"}', // 4: traversal
    '{"id": "x3", "image": "images/missing.jpg", "question": "Q?", "answer": "yes"}', // 5: image not uploaded
    '{"id": "x4", "image": "images/broken.png", "question": "Q?", "answer": "yes"}', // 6: not decodable
    lines[0], // 7: duplicate id
    lines[1], // 8: fine
  ].join('\n');
  const res = await withImages(
    request(app).post('/admin/fine-tunes').set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('training_file', Buffer.from(bad), 'cases.jsonl'),
    ['synpic29265.jpg', 'synpic25821.jpg'],
  ).attach('images', Buffer.from('\x89PNG\r\n\x1a\n-truncated'), 'broken.png');
  assert.equal(res.status, 201, res.text);
  assert.equal(res.body.status, 'validating_files');
  assert.match(res.body.id, /^ftjob-[0-9a-f]{16}$/);
  assert.equal(res.headers.location, `/admin/fine-tunes/${res.body.id}`);

  const job = await waitForStatus(app, res.body.id, 'failed');
  assert.equal(job.error.code, 'invalid_upload');
  const byLine = new Map<number, string>((job.error.errors as { line: number; message: string }[]).map((e) => [e.line, e.message]));
  assert.deepEqual([...byLine.keys()].sort((a, b) => a - b), [2, 3, 4, 5, 6, 7], JSON.stringify(job.error.errors));
  assert.match(byLine.get(2)!, /answer/);
  assert.match(byLine.get(3)!, /invalid JSON/);
  assert.match(byLine.get(4)!, /\.\./);
  assert.match(byLine.get(5)!, /not found/);
  assert.match(byLine.get(6)!, /broken\.png.*cannot be used/);
  assert.match(byLine.get(7)!, /duplicate id/);
  assert.equal(job.dataset_sha256, null);
  assert.deepEqual(readdirSync(path.join(dataDir, 'uploads')), [], 'the staged upload of a failed job is removed');

  // events as JSON, and as SSE (the backlog, ending with the final status since the job is over)
  const events = await request(app).get(`/admin/fine-tunes/${job.id}/events`).set(ADMIN_AUTH);
  assert.equal(events.status, 200);
  assert.deepEqual(events.body.data.map((e: { type: string }) => e.type), ['created', 'failed']);
  const sse = await request(app).get(`/admin/fine-tunes/${job.id}/events`).set(ADMIN_AUTH).set('Accept', 'text/event-stream');
  assert.equal(sse.status, 200);
  assert.match(String(sse.headers['content-type']), /text\/event-stream/);
  assert.deepEqual([...sse.text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]), ['created', 'failed']);
  const after = await request(app).get(`/admin/fine-tunes/${job.id}/events?after=${events.body.data[0].id}`).set(ADMIN_AUTH);
  assert.deepEqual(after.body.data.map((e: { type: string }) => e.type), ['failed']);

  // listing, lookups, cancel of a finished job
  const list = await request(app).get('/admin/fine-tunes').set(ADMIN_AUTH);
  assert.deepEqual(list.body.data.map((j: { id: string }) => j.id), [job.id]);
  assertProblem(await request(app).get('/admin/fine-tunes/ftjob-0000000000000000').set(ADMIN_AUTH), 404);
  assertProblem(await request(app).post(`/admin/fine-tunes/${job.id}/cancel`).set(ADMIN_AUTH), 409);
  assertProblem(await request(app).get('/admin/fine-tunes').set(AUTH), 403);

  // every admin action is in the audit log, with ids and settings but no case content
  const created = audit.entries.find((e) => e.action === 'fine_tune.create' && e.status === 201);
  assert.ok(created, 'the upload is audited');
  assert.equal((created.details as { job_id: string }).job_id, job.id);
  assert.ok(audit.entries.some((e) => e.action === 'fine_tune.cancel' && e.status === 409));
  assert.ok(!JSON.stringify(audit.entries).includes('Is it?'), 'no question text in the audit log');
});

test('an archive upload is read: the JSONL inside it and images relative to it', async (t) => {
  const { app } = await setup(t);
  // A JSONL naming an image the archive lacks: the job fails on that line, which shows the archive was read.
  const lines = JSONL.toString('utf8').trimEnd().split('\n').slice(0, 3);
  lines.push('{"id": "x9", "image": "images/absent.jpg", "question": "Q?", "answer": "no"}');
  const entries = [{ path: 'set/cases.jsonl', data: Buffer.from(lines.join('\n')) }];
  for (const l of lines.slice(0, 3)) {
    const image = (JSON.parse(l) as { image: string }).image;
    entries.push({ path: `set/${image}`, data: readFileSync(path.join('test/fixtures/vqa', image)) });
  }
  const res = await request(app).post('/admin/fine-tunes').set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('archive', gzipSync(writeTarArchive(entries)), 'set.tar.gz');
  assert.equal(res.status, 201, res.text);
  const job = await waitForStatus(app, res.body.id, 'failed');
  assert.deepEqual(job.error.errors, [{ line: 4, message: 'image not found: images/absent.jpg' }]);
});
