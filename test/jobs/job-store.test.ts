// The job table and its events: the columns survive reopening the database; status changes
// only happen from the states named, so a late worker message cannot revive a finished job.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FINE_TUNE_DEFAULTS } from '../../src/jobs/hyperparameters.ts';
import { JobStore, newJobId, toJobJson, type JobSpec } from '../../src/jobs/job-store.ts';

const SPEC: JobSpec = {
  base_dir: '/m/base',
  models_dir: '/m',
  result_model: 'base-ft-1',
  standard_validation: [],
  worker_threads: 1,
  validation_fraction: 0.2,
  canary_weight: 0.1,
};

test('jobs and events persist across reopening, with every column of the issue', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'job-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let store = JobStore.open(dir);
  const id = newJobId();
  const job = store.create({ id, base_model: 'base', hyperparameters: { ...FINE_TUNE_DEFAULTS, max_steps: 9 }, spec: SPEC });
  assert.equal(job.status, 'validating_files');
  assert.deepEqual(job.progress, { step: 0, total: 9, reward_mean: null, kl: null });
  assert.ok(store.transition(id, ['validating_files'], 'queued', { dataset_sha256: 'a'.repeat(64) }));
  assert.ok(store.transition(id, ['queued'], 'running', { started: true }));
  store.recordAttempt(id, 1234);
  store.setProgress(id, { step: 3, total: 9, reward_mean: 0.5, kl: 0.01 });
  store.addEvent(id, { type: 'metrics', message: 'step 3/9', data: { step: 3 } });
  store.close();

  store = JobStore.open(dir);
  const again = store.get(id)!;
  assert.equal(again.status, 'running');
  assert.equal(again.dataset_sha256, 'a'.repeat(64));
  assert.deepEqual(again.progress, { step: 3, total: 9, reward_mean: 0.5, kl: 0.01 });
  assert.equal(again.worker_pid, 1234);
  assert.equal(again.attempts, 1);
  assert.ok(again.started_at);
  assert.deepEqual(
    store.events(id).map((e) => [e.type, e.data]),
    [['metrics', { step: 3 }]],
  );
  const json = toJobJson(again);
  for (const key of [
    'id',
    'status',
    'base_model',
    'dataset_sha256',
    'hyperparameters',
    'progress',
    'created_at',
    'started_at',
    'finished_at',
    'result_model',
    'error',
  ])
    assert.ok(key in json, key);
  store.close();
});

test('transitions are conditional; lists page newest first', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'job-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = JobStore.open(dir);
  t.after(() => store.close());
  const ids = [newJobId(), newJobId(), newJobId()];
  for (const id of ids) store.create({ id, base_model: 'base', hyperparameters: FINE_TUNE_DEFAULTS, spec: SPEC });
  assert.ok(store.transition(ids[0]!, ['validating_files'], 'cancelled', { finished: true }));
  // a late "validated" for a cancelled job changes nothing
  assert.equal(store.transition(ids[0]!, ['validating_files'], 'queued', { dataset_sha256: 'b'.repeat(64) }), false);
  assert.equal(store.get(ids[0]!)!.status, 'cancelled');
  assert.equal(store.get(ids[0]!)!.dataset_sha256, null);
  assert.equal(store.recordCrash(ids[1]!), 1);
  assert.equal(store.recordCrash(ids[1]!), 2);

  const first = store.list({ limit: 2 });
  assert.deepEqual(
    first.jobs.map((j) => j.id),
    [ids[2], ids[1]],
  );
  assert.equal(first.hasMore, true);
  const second = store.list({ limit: 2, after: ids[1] });
  assert.deepEqual(
    second.jobs.map((j) => j.id),
    [ids[0]],
  );
  assert.equal(second.hasMore, false);
  assert.deepEqual(
    store.withStatus('validating_files').map((j) => j.id),
    [ids[1], ids[2]],
  );
});
