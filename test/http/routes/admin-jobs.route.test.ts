// POST/GET /admin/fine-tunes… through the real app (auth, error handler, audit trail) with fake
// serving runtimes: every malformed request is a problem document at once; an upload whose content is
// bad is accepted, then its job fails listing each problem with its line; events as JSON and SSE.
// Every response is checked against openapi.yaml (assertContract; SSE events against x-event-schema),
// including jobs in every state, driven through a real JobStore behind a stand-in queue.
// (Valid uploads that really train are in test/jobs/fine-tune-e2e.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import request from 'supertest';
import { createApp, fineTuneRouters } from '../../../src/app.ts';
import { MemoryAuditSink } from '../../../src/audit/audit-log.ts';
import { silentLogger } from '../../../src/audit/logger.ts';
import { loadConfig } from '../../../src/config.ts';
import { adminJobsRouter } from '../../../src/http/routes/admin-jobs.route.ts';
import type { Schema } from '../../../src/http/openapi/schema-validator.ts';
import { createFineTunes } from '../../../src/jobs/fine-tunes.ts';
import { FINE_TUNE_DEFAULTS, HyperparameterError, resolveHyperparameters } from '../../../src/jobs/hyperparameters.ts';
import { JobFinishedError } from '../../../src/jobs/job-queue.ts';
import { JobStore, newJobId, TERMINAL_STATUSES, type JobSpec } from '../../../src/jobs/job-store.ts';
import { DEFAULT_UPLOAD_LIMITS, type FineTuneRequest } from '../../../src/jobs/upload-validation.ts';
import { assertContract, spec, sseEvents } from '../../helpers/contract.ts';
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
  const app = await createApp({ config, loader: fakeLoader(), logger: silentLogger, audit, extraRouters: (parts) => fineTuneRouters(fineTunes, parts) });
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

/**
 * Sends the request and checks its response against openapi.yaml: a declared status and media type,
 * and a body matching the schema; an event stream event by event against the x-event-schema.
 */
async function checked(req: request.Test): Promise<request.Response> {
  const url = new URL(req.url);
  const res = await req;
  if (String(res.headers['content-type']).startsWith('text/event-stream')) assertEventStream(req.method, url.pathname, res);
  else assertContract(req.method, url.pathname + url.search, res);
  return res;
}

/** assertContract for this stream, whose end is the job's final event rather than `data: [DONE]`. */
function assertEventStream(method: string, urlPath: string, res: request.Response): void {
  const operation = spec.match(method, urlPath).found?.operation;
  assert.ok(operation, `${method} ${urlPath} is not in openapi.yaml`);
  assert.equal(res.status, 200);
  const media = spec.deref<{ content: Record<string, { 'x-event-schema'?: Schema }> }>((operation.raw.responses as Record<string, unknown>)['200']).content[
    'text/event-stream'
  ];
  assert.ok(media?.['x-event-schema'], 'the stream declares its event schema');
  const events = sseEvents(res.text);
  assert.ok(events.length > 0, 'the stream carried events');
  for (const event of events)
    assert.deepEqual(spec.validator.validate(media['x-event-schema'], JSON.parse(event)), [], `SSE event breaks the contract: ${event}`);
}

/** A problem document with this status (and these error paths) that matches the contract. */
async function assertProblem(req: request.Test, status: number, paths: string[] = []): Promise<request.Response> {
  const res = await checked(req);
  assert.equal(res.status, status, res.text);
  assert.match(String(res.headers['content-type']), /application\/problem\+json/);
  assert.equal(res.body.status, status);
  for (const p of paths)
    assert.ok(
      (res.body.errors as { path: string }[]).some((e) => e.path === p),
      `expected a problem at ${p}: ${res.text}`,
    );
  return res;
}

async function waitForStatus(app: Parameters<typeof request>[0], id: string, status: string) {
  // A generous deadline: validation decodes images, which is slow when the machine is busy.
  for (const deadline = Date.now() + 20_000; Date.now() < deadline; ) {
    const res = await checked(request(app).get(`/admin/fine-tunes/${id}`).set(ADMIN_AUTH));
    if (res.body.status === status) return res.body;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`job ${id} never became ${status}`);
}

test('malformed requests are refused at once with every problem listed', async (t) => {
  const { app } = await setup(t);
  const post = () => request(app).post('/admin/fine-tunes');

  await assertProblem(post().field('base_model', 'clinvqa-sft'), 401);
  await assertProblem(post().set(AUTH).field('base_model', 'clinvqa-sft'), 403);
  await assertProblem(post().set(ADMIN_AUTH).send({ base_model: 'clinvqa-sft' }), 415);

  // no training file, no images, bad fractions, bad hyperparameters — all in one answer
  await assertProblem(
    post()
      .set(ADMIN_AUTH)
      .field('base_model', 'clinvqa-sft')
      .field('validation_fraction', '1.5')
      .field('canary_weight', '0')
      .field('hyperparameters', JSON.stringify({ max_steps: -1, learning_rate: 'fast', out: '/etc', nonsense: 1 })),
    422,
    [
      '/training_file',
      '/validation_fraction',
      '/canary_weight',
      '/hyperparameters/max_steps',
      '/hyperparameters/learning_rate',
      '/hyperparameters/out',
      '/hyperparameters/nonsense',
    ],
  );
  await assertProblem(
    post()
      .set(ADMIN_AUTH)
      .field('base_model', 'clinvqa-sft')
      .field('hyperparameters', '{not json')
      .attach('training_file', JSONL, 'a.jsonl')
      .attach('images', Buffer.from('x'), 'a.jpg'),
    422,
    ['/hyperparameters'],
  );
  await assertProblem(post().set(ADMIN_AUTH).attach('training_file', JSONL, 'a.jsonl').attach('images', Buffer.from('x'), 'a.jpg'), 422, ['/base_model']);
  await assertProblem(
    post().set(ADMIN_AUTH).field('base_model', 'no-such-model').attach('training_file', JSONL, 'a.jsonl').attach('images', Buffer.from('x'), 'a.jpg'),
    422,
    ['/base_model'],
  );
  // path traversal and duplicates in image names (form-data keeps the directories of `filepath`)
  await assertProblem(
    post()
      .set(ADMIN_AUTH)
      .field('base_model', 'clinvqa-sft')
      .attach('training_file', JSONL, 'a.jsonl')
      .attach('images', Buffer.from('x'), { filepath: '../../etc/passwd' } as unknown as string),
    422,
    ['/images/0'],
  );
  await assertProblem(
    post()
      .set(ADMIN_AUTH)
      .field('base_model', 'clinvqa-sft')
      .attach('training_file', JSONL, 'a.jsonl')
      .attach('images', Buffer.from('x'), 'a.jpg')
      .attach('images', Buffer.from('y'), 'a.jpg'),
    422,
    ['/images/1'],
  );
  // images and an archive together; an unknown file part
  await assertProblem(
    post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('archive', writeTarArchive([]), 'a.tar').attach('images', Buffer.from('x'), 'a.jpg'),
    422,
    ['/archive'],
  );
  await assertProblem(post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('weights', Buffer.from('x'), 'w.bin'), 422);
  // archives: a symbolic link, and a path escaping the upload
  const link = writeTarArchive([
    { path: 'cases.jsonl', data: JSONL },
    { path: 'images/x.jpg', data: Buffer.alloc(0), type: '2' },
  ]);
  await assertProblem(post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('archive', link, 'a.tar'), 422, ['/archive']);
  const traversal = writeTarArchive([
    { path: 'cases.jsonl', data: JSONL },
    { path: '../x.jpg', data: Buffer.from('x') },
  ]);
  await assertProblem(post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('archive', gzipSync(traversal), 'a.tar.gz'), 422, ['/archive']);
  // an image part over the byte limit (200 kB here), and more parts than allowed
  await assertProblem(
    post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('training_file', JSONL, 'a.jsonl').attach('images', Buffer.alloc(300_000), 'big.jpg'),
    413,
  );
  let many = post().set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('training_file', JSONL, 'a.jsonl');
  for (let i = 0; i < 45; i++) many = many.attach('images', Buffer.from('x'), `i${i}.jpg`);
  await assertProblem(many, 413);

  // nothing of the above became a job
  const list = await checked(request(app).get('/admin/fine-tunes').set(ADMIN_AUTH));
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
  const res = await checked(
    withImages(
      request(app).post('/admin/fine-tunes').set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('training_file', Buffer.from(bad), 'cases.jsonl'),
      ['synpic29265.jpg', 'synpic25821.jpg'],
    ).attach('images', Buffer.from('\x89PNG\r\n\x1a\n-truncated'), 'broken.png'),
  );
  assert.equal(res.status, 201, res.text);
  assert.equal(res.body.status, 'validating_files');
  assert.match(res.body.id, /^ftjob-[0-9a-f]{16}$/);
  assert.equal(res.headers.location, `/admin/fine-tunes/${res.body.id}`);

  const job = await waitForStatus(app, res.body.id, 'failed');
  assert.equal(job.error.code, 'invalid_upload');
  const byLine = new Map<number, string>((job.error.errors as { line: number; message: string }[]).map((e) => [e.line, e.message]));
  assert.deepEqual(
    [...byLine.keys()].sort((a, b) => a - b),
    [2, 3, 4, 5, 6, 7],
    JSON.stringify(job.error.errors),
  );
  assert.match(byLine.get(2)!, /answer/);
  assert.match(byLine.get(3)!, /invalid JSON/);
  assert.match(byLine.get(4)!, /\.\./);
  assert.match(byLine.get(5)!, /not found/);
  assert.match(byLine.get(6)!, /broken\.png.*cannot be used/);
  assert.match(byLine.get(7)!, /duplicate id/);
  assert.equal(job.dataset_sha256, null);
  assert.deepEqual(readdirSync(path.join(dataDir, 'uploads')), [], 'the staged upload of a failed job is removed');

  // events as JSON, and as SSE (the backlog, ending with the final status since the job is over)
  const events = await checked(request(app).get(`/admin/fine-tunes/${job.id}/events`).set(ADMIN_AUTH));
  assert.equal(events.status, 200);
  assert.deepEqual(
    events.body.data.map((e: { type: string }) => e.type),
    ['created', 'failed'],
  );
  const sse = await checked(request(app).get(`/admin/fine-tunes/${job.id}/events`).set(ADMIN_AUTH).set('Accept', 'text/event-stream'));
  assert.equal(sse.status, 200);
  assert.match(String(sse.headers['content-type']), /text\/event-stream/);
  assert.deepEqual(
    [...sse.text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]),
    ['created', 'failed'],
  );
  const after = await checked(request(app).get(`/admin/fine-tunes/${job.id}/events?after=${events.body.data[0].id}`).set(ADMIN_AUTH));
  assert.deepEqual(
    after.body.data.map((e: { type: string }) => e.type),
    ['failed'],
  );

  // listing, lookups, cancel of a finished job
  const list = await checked(request(app).get('/admin/fine-tunes').set(ADMIN_AUTH));
  assert.deepEqual(
    list.body.data.map((j: { id: string }) => j.id),
    [job.id],
  );
  await assertProblem(request(app).get('/admin/fine-tunes/ftjob-0000000000000000').set(ADMIN_AUTH), 404);
  await assertProblem(request(app).post(`/admin/fine-tunes/${job.id}/cancel`).set(ADMIN_AUTH), 409);
  await assertProblem(request(app).get('/admin/fine-tunes').set(AUTH), 403);

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
  const res = await checked(
    request(app)
      .post('/admin/fine-tunes')
      .set(ADMIN_AUTH)
      .field('base_model', 'clinvqa-sft')
      .attach('archive', gzipSync(writeTarArchive(entries)), 'set.tar.gz'),
  );
  assert.equal(res.status, 201, res.text);
  const job = await waitForStatus(app, res.body.id, 'failed');
  assert.deepEqual(job.error.errors, [{ line: 4, message: 'image not found: images/absent.jpg' }]);
});

test('the contract is enforced on these routes: Content-Type, methods, headers and the upload form', async (t) => {
  const { app } = await setup(t);
  const none = '/admin/fine-tunes/ftjob-0000000000000000';

  // Content-Type and method come from the contract's operation table, before the route runs.
  const json = await assertProblem(request(app).post('/admin/fine-tunes').set(ADMIN_AUTH).send({ base_model: 'clinvqa-sft' }), 415);
  assert.match(json.body.detail, /use one of multipart\/form-data/);
  const del = await request(app).delete(none).set(ADMIN_AUTH);
  assert.equal(del.status, 405, del.text);
  assert.equal(del.body.code, 'method_not_allowed');
  // A header parameter of the contract (Last-Event-ID must be an event id).
  const header = await assertProblem(request(app).get(`${none}/events`).set(ADMIN_AUTH).set('Last-Event-ID', 'x; DROP'), 400, ['/headers/last-event-id']);
  assert.equal(header.body.code, 'invalid_request');
  // The form against FineTuneUploadForm, after the route parsed it: reward weights must be numbers.
  const hyper = await assertProblem(
    withImages(
      request(app)
        .post('/admin/fine-tunes')
        .set(ADMIN_AUTH)
        .field('base_model', 'clinvqa-sft')
        .field('hyperparameters', JSON.stringify({ reward_funcs: ['accuracy'], reward_weights: ['heavy'] }))
        .attach('training_file', JSONL, 'cases.jsonl'),
      ['synpic29265.jpg'],
    ),
    422,
    ['/hyperparameters/reward_weights/0'],
  );
  assert.equal(hyper.body.code, 'invalid_upload');
  // Query parameters out of range.
  await assertProblem(request(app).get('/admin/fine-tunes?limit=101').set(ADMIN_AUTH), 400);
  await assertProblem(request(app).get('/admin/fine-tunes?limit=ten').set(ADMIN_AUTH), 400);
  // Unknown jobs.
  const missing = await assertProblem(request(app).get(none).set(ADMIN_AUTH), 404);
  assert.equal(missing.body.code, 'job_not_found');
  await assertProblem(request(app).post(`${none}/cancel`).set(ADMIN_AUTH), 404);
  // A malformed id breaks the path parameter's pattern.
  await assertProblem(request(app).get('/admin/fine-tunes/not-a-job-id').set(ADMIN_AUTH), 400);
  await assertProblem(request(app).get(`${none}/events`).set(AUTH), 403);
});

/** The real app and store, with a queue that only records: jobs are moved through their states by hand. */
async function setupWithStore(t: { after(fn: () => Promise<void> | void): void }) {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-ft-contract-'));
  const dataDir = path.join(root, 'var');
  const modelsDir = path.join(root, 'models');
  writeFakePackage(modelsDir, 'clinvqa-sft');
  const config = loadConfig({ CLINVQA_API_KEYS: `clinician:${CLINICIAN_KEY},admin:${ADMIN_KEY}`, CLINVQA_DATA_DIR: dataDir, CLINVQA_MODELS_DIR: modelsDir });
  const store = JobStore.open(dataDir);
  const emitter = new EventEmitter();
  const queue = {
    emitter,
    submit: async (req: FineTuneRequest) => {
      const id = newJobId();
      const job = store.create({ id, base_model: req.baseModel, hyperparameters: req.hyperparameters, spec: resultSpec(req, id) });
      emitter.emit('event', store.addEvent(id, { type: 'created', message: 'job created' }));
      return job;
    },
    cancel: (id: string) => {
      const job = store.get(id);
      if (!job) return undefined;
      if (TERMINAL_STATUSES.includes(job.status)) throw new JobFinishedError(`job ${id} has already ${job.status}`);
      store.requestCancel(id);
      return store.get(id);
    },
  };
  const app = await createApp({
    config,
    loader: fakeLoader(),
    logger: silentLogger,
    audit: new MemoryAuditSink(),
    extraRouters: () => [adminJobsRouter({ queue, store, limits: { ...DEFAULT_UPLOAD_LIMITS, maxFiles: 40, minCases: 2 } })],
  });
  t.after(async () => {
    store.close();
    await app.close();
    rmSync(root, { recursive: true, force: true });
  });
  return { app: app.app, store };
}

function resultSpec(req: FineTuneRequest, id: string): JobSpec {
  return {
    base_dir: '/models/base',
    models_dir: '/models',
    result_model: `${req.baseModel}-ft-${id.slice(6, 18)}`,
    standard_validation: [],
    worker_threads: 1,
    validation_fraction: req.validationFraction,
    canary_weight: req.canaryWeight,
  };
}

test('a job in every state, its list, events (JSON and SSE) and cancel: every response matches the contract', async (t) => {
  const { app, store } = await setupWithStore(t);
  const upload = () =>
    withImages(request(app).post('/admin/fine-tunes').set(ADMIN_AUTH).field('base_model', 'clinvqa-sft').attach('training_file', JSONL, 'cases.jsonl'), [
      'synpic29265.jpg',
    ]);

  const created = await checked(
    upload()
      .field('hyperparameters', JSON.stringify({ max_steps: 3, seed: 7, loss_type: 'dapo', epsilon_high: 0.28 }))
      .field('validation_fraction', '0.9')
      .field('canary_weight', '0.25')
      .field('suffix', 'ignored'),
  );
  assert.equal(created.status, 201, created.text);
  assert.equal(created.headers.location, `/admin/fine-tunes/${created.body.id}`);
  assert.deepEqual([created.body.validation_fraction, created.body.canary_weight, created.body.hyperparameters.max_steps], [0.9, 0.25, 3]);
  const done = created.body.id as string;
  const failed = (await checked(upload())).body.id as string;
  const running = (await checked(upload())).body.id as string;

  // succeeded, with progress, per-step events and before/after metrics
  store.transition(done, ['validating_files'], 'queued', { dataset_sha256: 'ab'.repeat(32) });
  store.transition(done, ['queued'], 'running', { started: true });
  store.recordAttempt(done, 4242);
  for (let step = 1; step <= 3; step++) {
    const progress = { step, total: 3, reward_mean: step / 4, kl: step === 1 ? null : 0.001 * step };
    store.setProgress(done, progress);
    store.addEvent(done, { type: 'metrics', message: `step ${step}/3`, data: progress });
  }
  const scores = (accuracy: number) => ({ held_out: { n: 4, accuracy, closed_accuracy: accuracy, open_accuracy: null }, validation: { n: 10, accuracy: 0.5 } });
  store.transition(done, ['running'], 'succeeded', {
    finished: true,
    result_model: `clinvqa-sft-ft-${done.slice(6, 18)}`,
    metrics: { before: scores(0.25), after: scores(0.5) },
  });
  store.addEvent(done, { type: 'succeeded', message: 'job succeeded' });
  // failed by worker crashes; running with a cancel requested
  store.transition(failed, ['validating_files'], 'failed', { finished: true, error: { code: 'worker_crashed', message: 'the worker crashed 3 times' } });
  store.addEvent(failed, { type: 'failed', level: 'error', message: 'job failed', data: { code: 'worker_crashed' } });
  store.transition(running, ['validating_files'], 'queued', { dataset_sha256: 'cd'.repeat(32) });
  store.transition(running, ['queued'], 'running', { started: true });

  const cancelled = await checked(request(app).post(`/admin/fine-tunes/${running}/cancel`).set(ADMIN_AUTH));
  assert.equal(cancelled.status, 200, cancelled.text);
  assert.equal(cancelled.body.cancel_requested, true);
  await assertProblem(request(app).post(`/admin/fine-tunes/${done}/cancel`).set(ADMIN_AUTH), 409);

  const statuses = new Map<string, string>();
  for (const id of [done, failed, running]) statuses.set(id, (await checked(request(app).get(`/admin/fine-tunes/${id}`).set(ADMIN_AUTH))).body.status);
  assert.deepEqual([...statuses.values()], ['succeeded', 'failed', 'running']);

  // pages, newest first
  const first = await checked(request(app).get('/admin/fine-tunes?limit=2').set(ADMIN_AUTH));
  assert.deepEqual([first.body.data.map((j: { id: string }) => j.id), first.body.has_more], [[running, failed], true]);
  const second = await checked(request(app).get(`/admin/fine-tunes?limit=2&after=${failed}`).set(ADMIN_AUTH));
  assert.deepEqual([second.body.data.map((j: { id: string }) => j.id), second.body.has_more], [[done], false]);

  // events: a JSON page, the rest after it, and the whole stream of a finished job
  const page = await checked(request(app).get(`/admin/fine-tunes/${done}/events?limit=2`).set(ADMIN_AUTH));
  assert.deepEqual([page.body.data.map((e: { type: string }) => e.type), page.body.has_more], [['created', 'metrics'], true]);
  const rest = await checked(request(app).get(`/admin/fine-tunes/${done}/events?after=${page.body.data[1].id}`).set(ADMIN_AUTH));
  assert.deepEqual(
    rest.body.data.map((e: { type: string }) => e.type),
    ['metrics', 'metrics', 'succeeded'],
  );
  const sse = await checked(
    request(app).get(`/admin/fine-tunes/${done}/events`).set(ADMIN_AUTH).set('Accept', 'text/event-stream').set('Last-Event-ID', String(page.body.data[0].id)),
  );
  assert.deepEqual(
    [...sse.text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]),
    ['metrics', 'metrics', 'metrics', 'succeeded'],
  );
  await assertProblem(request(app).get(`/admin/fine-tunes/${done}/events?after=-1`).set(ADMIN_AUTH), 400);
  await assertProblem(request(app).get(`/admin/fine-tunes/${done}/events?limit=10001`).set(ADMIN_AUTH), 400);
  const failedEvents = await checked(request(app).get(`/admin/fine-tunes/${failed}/events`).set(ADMIN_AUTH));
  assert.equal(failedEvents.body.data.at(-1).level, 'error');
});

test('the examples of the fine-tune routes in openapi.yaml match their own schemas', () => {
  let seen = 0;
  for (const operation of spec.operations().filter((o) => o.template.startsWith('/admin/fine-tunes'))) {
    for (const [status, response] of Object.entries(operation.raw.responses as Record<string, unknown>)) {
      const content = spec.deref<{ content?: Record<string, { schema?: Schema; example?: unknown }> }>(response).content ?? {};
      for (const [mediaType, media] of Object.entries(content)) {
        if (media.example === undefined || media.schema === undefined) continue;
        seen++;
        assert.deepEqual(spec.validator.validate(media.schema, media.example), [], `${operation.operationId} ${status} ${mediaType} example`);
      }
    }
  }
  assert.ok(seen >= 9, `expected examples for the jobs, lists and every problem response, saw ${seen}`);
});

test('FineTuneHyperparameters in openapi.yaml is what the server accepts: same names, defaults, bounds and choices', () => {
  const schema = spec.resolveRef('#/components/schemas/FineTuneHyperparameters') as { properties: Record<string, Record<string, unknown>> };
  const defaults = FINE_TUNE_DEFAULTS as unknown as Record<string, unknown>;
  assert.deepEqual(Object.keys(schema.properties).sort(), Object.keys(defaults).sort());
  const refused = (value: Record<string, unknown>): boolean => {
    try {
      resolveHyperparameters(value);
      return false;
    } catch (error) {
      if (error instanceof HyperparameterError) return true;
      throw error;
    }
  };
  for (const [name, property] of Object.entries(schema.properties)) {
    assert.deepEqual(property.default, defaults[name], `default of ${name}`);
    const integer = property.type === 'integer';
    if (typeof property.minimum === 'number') {
      assert.equal(refused({ [name]: property.minimum }), false, `${name} = its minimum is accepted`);
      assert.equal(refused({ [name]: property.minimum - (integer ? 1 : 1e-9) }), true, `${name} below its minimum is refused`);
    }
    if (typeof property.maximum === 'number') {
      assert.equal(refused({ [name]: property.maximum }), false, `${name} = its maximum is accepted`);
      assert.equal(
        refused({ [name]: property.maximum + (integer ? 1 : Math.max(1e-9, property.maximum * 1e-9)) }),
        true,
        `${name} above its maximum is refused`,
      );
    }
    if (integer) assert.equal(refused({ [name]: Number(defaults[name]) + 0.5 }), true, `${name} must be an integer`);
    if (Array.isArray(property.enum)) {
      for (const choice of property.enum) assert.equal(refused({ [name]: choice }), false, `${name} = ${String(choice)}`);
      assert.equal(refused({ [name]: 'bogus' }), true);
    }
  }
  assert.equal(refused({ threads: 4 }), true, 'server-owned settings are not in the schema and are refused');
});

test('the upload form as the contract sees it: typed fields, JSON hyperparameters, repeated image parts', () => {
  const operation = spec.match('POST', '/admin/fine-tunes').found!.operation;
  assert.equal(operation.requestBodies.get('multipart/form-data'), true, 'before the route parses the body only its Content-Type is checked');
  const check = (fields: Record<string, unknown>, files: string[]) => operation.checkParsedForm(fields, files).map((i) => `${i.path} ${i.message}`);
  const files = ['training_file', 'images', 'images'];
  assert.deepEqual(check({ base_model: 'clinvqa-sft', validation_fraction: '0.5', canary_weight: ' ', hyperparameters: '{"max_steps": 3}' }, files), []);
  assert.deepEqual(check({ base_model: 'clinvqa-sft' }, ['archive']), []);
  assert.deepEqual(check({ base_model: 'clinvqa-sft', hyperparameters: '{"max_steps": 0}' }, files), ['/hyperparameters/max_steps must be >= 1']);
  assert.deepEqual(check({ base_model: 'clinvqa-sft', hyperparameters: '[1' }, files), ['/hyperparameters must be object']);
  assert.deepEqual(check({ base_model: 'clinvqa-sft', validation_fraction: 'most' }, files), ['/validation_fraction must be number']);
  assert.deepEqual(check({ base_model: 'Bad Name', temperature: '1' }, [...files, 'training_file']), [
    '/base_model must match the pattern ^[a-z0-9][a-z0-9._-]{0,63}$',
    '/temperature is not an allowed property',
    '/training_file must be string',
  ]);
  assert.deepEqual(check({}, files), ['/base_model is required']);
});
