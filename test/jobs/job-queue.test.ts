// The queue with real worker processes on a tiny real base model: one job trains at a time and the
// next waits; cancel stops the worker at a checkpoint; a worker killed with SIGKILL is restarted from
// the last checkpoint until the crash limit fails the job with a clear error; a graceful shutdown
// pauses the job and a new queue over the same data dir resumes it; an unusable base model fails
// the job at once instead of being retried as a crash.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../src/audit/logger.ts';
import { runDirOf } from '../../src/jobs/dataset-store.ts';
import { resolveHyperparameters } from '../../src/jobs/hyperparameters.ts';
import { JobQueue, type JobQueueOptions } from '../../src/jobs/job-queue.ts';
import { JobStore, type FineTuneJob, type JobEvent } from '../../src/jobs/job-store.ts';
import { DEFAULT_UPLOAD_LIMITS, type FineTuneRequest } from '../../src/jobs/upload-validation.ts';
import { writeTinyBase } from './support/tiny-base.ts';

let root: string;
let modelsDir: string;
before(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'job-queue-'));
  modelsDir = path.join(root, 'models');
  await writeTinyBase(modelsDir);
});
after(() => rmSync(root, { recursive: true, force: true }));

function request(maxSteps: number): FineTuneRequest {
  const dir = 'test/fixtures/vqa/images';
  return {
    baseModel: 'tiny-base',
    hyperparameters: resolveHyperparameters({
      max_steps: maxSteps,
      checkpoint_every: 1,
      prompts_per_step: 2,
      num_generations: 2,
      max_completion_length: 8,
      eval_samples: 4,
    }),
    validationFraction: 0.2,
    canaryWeight: null,
    upload: { jsonl: readFileSync('test/fixtures/vqa/slake.jsonl'), files: new Map(readdirSync(dir).map((n) => [n, readFileSync(path.join(dir, n))])) },
  };
}

function makeQueue(dataDir: string, over: Partial<JobQueueOptions> = {}) {
  const store = JobStore.open(dataDir);
  const registered: string[] = [];
  const events: JobEvent[] = [];
  const queue = new JobQueue({
    store,
    dataDir,
    modelsDir,
    limits: DEFAULT_UPLOAD_LIMITS,
    logger: silentLogger,
    registerModel: async (id) => void registered.push(id),
    setCanary: () => undefined,
    standardValidation: [],
    retryDelayMs: 100,
    stopTimeoutMs: 20_000,
    ...over,
  });
  queue.emitter.on('event', (e: JobEvent) => events.push(e));
  return { store, queue, registered, events };
}

async function until<T>(what: string, read: () => T, ok: (v: T) => boolean, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = read();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v)?.slice(0, 1500)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const isDone = (j: FineTuneJob | undefined) => j !== undefined && ['succeeded', 'failed', 'cancelled'].includes(j.status);

test('one job at a time; cancel stops the running one at a checkpoint and the next one runs', async () => {
  const dataDir = path.join(root, 'var-cancel');
  const { store, queue, registered } = makeQueue(dataDir);
  await queue.start();
  const a = await queue.submit(request(500));
  const b = await queue.submit(request(2));
  await until(
    'job A to train',
    () => store.get(a.id)!,
    (j) => j.progress.step >= 2,
  );
  assert.equal(store.get(b.id)!.status, 'queued', 'the second job waits for the first');
  const cancelling = queue.cancel(a.id)!;
  assert.equal(cancelling.cancel_requested, true);
  const cancelled = await until('A cancelled', () => store.get(a.id), isDone);
  assert.equal(cancelled!.status, 'cancelled');
  assert.ok(cancelled!.progress.step < 500);
  assert.ok(readdirSync(path.join(runDirOf(dataDir, a.id), 'checkpoints')).length > 0, 'a checkpoint was saved');
  const done = await until('B done', () => store.get(b.id), isDone);
  assert.equal(done!.status, 'succeeded', JSON.stringify(done!.error));
  assert.deepEqual(registered, [done!.result_model]);
  // The new package is under the data dir, not among the shipped models.
  assert.ok(existsSync(path.join(dataDir, 'models', done!.result_model!, 'manifest.json')));
  assert.ok(!existsSync(path.join(modelsDir, done!.result_model!)));
  assert.throws(() => queue.cancel(b.id), /already succeeded/);
  // This queue has no standard validation set: the job says so, as a warning and in its metrics.
  const warning = store.events(b.id).find((e) => e.type === 'validation_unavailable');
  assert.equal(warning?.level, 'warn');
  assert.match(warning!.message, /no standard validation set is configured/);
  const metrics = done!.metrics as { before: Record<string, unknown>; after: Record<string, unknown> };
  assert.equal(metrics.before.validation, 'unavailable');
  assert.equal(metrics.after.validation, 'unavailable');
  assert.ok(metrics.after.held_out, 'the held-out part is scored either way');
  await queue.close();
  store.close();
});

test('a killed worker resumes from its checkpoint; past the crash limit the job fails saying why', async () => {
  const dataDir = path.join(root, 'var-crash');
  const { store, queue, events } = makeQueue(dataDir, { maxCrashes: 2 });
  await queue.start();
  const job = await queue.submit(request(500));
  await until(
    'training',
    () => store.get(job.id)!,
    (j) => j.progress.step >= 3,
  );
  process.kill(queue.workerPid!, 'SIGKILL');
  await until(
    'a crash event',
    () => events.filter((e) => e.type === 'worker_crashed'),
    (c) => c.length === 1,
  );
  const restartedAt = events.length;
  await until(
    'the second worker to train',
    () => events.slice(restartedAt),
    (es) => es.some((e) => e.type === 'metrics'),
  );
  const firstStepAfter = events.slice(restartedAt).find((e) => e.type === 'metrics')!.data!.step as number;
  const crashStep = events.find((e) => e.type === 'worker_crashed')!.data!.step as number;
  assert.ok(firstStepAfter > 1 && firstStepAfter <= crashStep + 1, `resumed at step ${firstStepAfter} after a crash at step ${crashStep}`);
  process.kill(queue.workerPid!, 'SIGKILL');
  const failed = await until('failure', () => store.get(job.id), isDone);
  assert.equal(failed!.status, 'failed');
  assert.equal(failed!.error!.code, 'worker_crashed');
  assert.match(failed!.error!.message, /crashed 2 times \(last: killed by SIGKILL after step \d+\)/);
  assert.equal(failed!.crashes, 2);
  await queue.close();
  store.close();
});

test('a graceful shutdown pauses the job; a new queue on the same data dir resumes and finishes it', async () => {
  const dataDir = path.join(root, 'var-restart');
  const first = makeQueue(dataDir);
  await first.queue.start();
  const job = await first.queue.submit(request(14));
  await until(
    'training',
    () => first.store.get(job.id)!,
    (j) => j.progress.step >= 3,
  );
  await first.queue.close();
  assert.equal(first.store.get(job.id)!.status, 'running', 'a paused job stays running, to be resumed');
  assert.ok(first.events.some((e) => e.type === 'paused'));
  const pausedAt = first.store.get(job.id)!.progress.step;
  first.store.close();

  const second = makeQueue(dataDir);
  await second.queue.start();
  const done = await until('finish', () => second.store.get(job.id), isDone);
  assert.equal(done!.status, 'succeeded', JSON.stringify(done!.error));
  const steps = second.events.filter((e) => e.type === 'metrics').map((e) => e.data!.step as number);
  assert.equal(steps[0], pausedAt + 1, `resumed right after the checkpoint of step ${pausedAt}: ${steps.join(',')}`);
  assert.equal(steps.at(-1), 14);
  assert.ok(second.events.some((e) => e.type === 'resumed'));
  await second.queue.close();
  second.store.close();
});

test('a base model that cannot be used fails the job at once, without retries', async () => {
  const dataDir = path.join(root, 'var-broken');
  mkdirSync(path.join(modelsDir, 'broken-base'), { recursive: true });
  writeFileSync(path.join(modelsDir, 'broken-base', 'manifest.json'), '{"id": "broken-base"}');
  const { store, queue } = makeQueue(dataDir);
  await queue.start();
  const job = await queue.submit({ ...request(3), baseModel: 'broken-base' });
  const failed = await until('failure', () => store.get(job.id), isDone);
  assert.equal(failed!.status, 'failed');
  assert.equal(failed!.error!.code, 'training_failed');
  assert.match(failed!.error!.message, /base model broken-base cannot be used/);
  assert.equal(failed!.crashes, 0);
  assert.equal(failed!.attempts, 1);
  await queue.close();
  store.close();
});
