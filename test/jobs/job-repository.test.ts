// One suite, two stores: the embedded SQLite JobStore and the Postgres one must behave the same for
// everything the job queue, the routes and the workers ask of them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FINE_TUNE_DEFAULTS } from '../../src/jobs/hyperparameters.ts';
import type { JobRepository } from '../../src/jobs/job-repository.ts';
import { JobStore, newJobId, type JobEvent, type JobSpec } from '../../src/jobs/job-store.ts';
import { PostgresJobStore } from '../../src/jobs/job-store.postgres.ts';
import { storeBackends } from '../helpers/store-backends.ts';

const SPEC: JobSpec = {
  base_dir: '/m/base',
  models_dir: '/m',
  result_model: 'base-ft-1',
  standard_validation: [],
  worker_threads: 1,
  validation_fraction: 0.2,
  canary_weight: 0.1,
};
const { backends } = storeBackends();

for (const backend of backends) {
  describe(`job store (${backend.name})`, () => {
    const open = async (t: { after(fn: () => Promise<void>): void }) => {
      const place = await backend.fresh();
      const reopen = (): JobRepository => (place.pool ? new PostgresJobStore(place.pool) : JobStore.open(place.dataDir));
      const store = reopen();
      t.after(async () => {
        await store.close();
        await place.cleanup();
      });
      return { store, reopen };
    };

    test('jobs, events and checkpoints persist across reopening', async (t) => {
      const { store, reopen } = await open(t);
      const id = newJobId();
      const job = await store.create({ id, base_model: 'base', hyperparameters: { ...FINE_TUNE_DEFAULTS, max_steps: 9 }, spec: SPEC });
      assert.equal(job.status, 'validating_files');
      assert.deepEqual(job.progress, { step: 0, total: 9, reward_mean: null, kl: null });
      assert.ok(await store.transition(id, ['validating_files'], 'queued', { dataset_sha256: 'a'.repeat(64) }));
      assert.ok(await store.transition(id, ['queued'], 'running', { started: true }));
      await store.recordAttempt(id, 1234);
      await store.setProgress(id, { step: 3, total: 9, reward_mean: 0.5, kl: 0.01 });
      const event = await store.addEvent(id, { type: 'metrics', message: 'step 3/9', data: { step: 3 } });
      assert.equal(event.data?.step, 3);
      await store.recordCheckpoint(id, 2, 'worker-a');
      await store.recordCheckpoint(id, 4, 'worker-a');
      await store.recordCheckpoint(id, 4, 'worker-b'); // a resumed run rewrites a step: latest writer wins

      const again = await reopen().get(id);
      assert.ok(again);
      assert.equal(again.status, 'running');
      assert.equal(again.dataset_sha256, 'a'.repeat(64));
      assert.deepEqual(again.hyperparameters, { ...FINE_TUNE_DEFAULTS, max_steps: 9 });
      assert.deepEqual(again.spec, SPEC);
      assert.deepEqual(again.progress, { step: 3, total: 9, reward_mean: 0.5, kl: 0.01 });
      assert.equal(again.worker_pid, 1234);
      assert.equal(again.attempts, 1);
      assert.ok(again.started_at && !Number.isNaN(Date.parse(again.started_at)));
      assert.equal(again.finished_at, null);
      assert.deepEqual(
        (await store.events(id)).map((e) => [e.type, e.data]),
        [['metrics', { step: 3 }]],
      );
      assert.deepEqual(
        (await store.checkpoints(id)).map((c) => [c.step, c.worker]),
        [
          [2, 'worker-a'],
          [4, 'worker-b'],
        ],
      );
    });

    test('transitions are conditional; lists page newest first; crashes count', async (t) => {
      const { store } = await open(t);
      const ids = [newJobId(), newJobId(), newJobId()];
      for (const id of ids) await store.create({ id, base_model: 'base', hyperparameters: FINE_TUNE_DEFAULTS, spec: SPEC });
      assert.ok(await store.transition(ids[0]!, ['validating_files'], 'cancelled', { finished: true }));
      assert.equal(await store.transition(ids[0]!, ['validating_files'], 'queued', { dataset_sha256: 'b'.repeat(64) }), false);
      const cancelled = (await store.get(ids[0]!))!;
      assert.equal(cancelled.status, 'cancelled');
      assert.equal(cancelled.dataset_sha256, null);
      assert.ok(cancelled.finished_at);
      assert.equal(await store.recordCrash(ids[1]!), 1);
      assert.equal(await store.recordCrash(ids[1]!), 2);
      await store.requestCancel(ids[2]!);
      assert.equal((await store.get(ids[2]!))!.cancel_requested, true);

      const first = await store.list({ limit: 2 });
      assert.deepEqual(
        first.jobs.map((j) => j.id),
        [ids[2], ids[1]],
      );
      assert.equal(first.hasMore, true);
      const second = await store.list({ limit: 2, after: ids[1] });
      assert.deepEqual(
        second.jobs.map((j) => j.id),
        [ids[0]],
      );
      assert.equal(second.hasMore, false);
      assert.deepEqual(
        (await store.withStatus('validating_files')).map((j) => j.id),
        [ids[1], ids[2]],
      );
      assert.equal(await store.get('ftjob-0000000000000000'), undefined);
    });

    test('a finished job keeps its result; events page by id', async (t) => {
      const { store } = await open(t);
      const id = newJobId();
      await store.create({ id, base_model: 'base', hyperparameters: FINE_TUNE_DEFAULTS, spec: SPEC });
      await store.transition(id, ['validating_files'], 'queued', { dataset_sha256: 'c'.repeat(64) });
      await store.transition(id, ['queued'], 'running', { started: true });
      const events: JobEvent[] = [];
      for (let i = 0; i < 5; i++) events.push(await store.addEvent(id, { type: 'metrics', message: `step ${i}` }));
      assert.ok(
        await store.transition(id, ['running'], 'succeeded', {
          result_model: 'base-ft-x',
          metrics: { before: { a: 1 }, after: { a: 2 } },
          finished: true,
          worker_pid: null,
        }),
      );
      assert.equal(await store.transition(id, ['running'], 'failed', { error: { code: 'training_failed', message: 'late' }, finished: true }), false);
      const done = (await store.get(id))!;
      assert.equal(done.status, 'succeeded');
      assert.equal(done.result_model, 'base-ft-x');
      assert.deepEqual(done.metrics, { before: { a: 1 }, after: { a: 2 } });
      assert.equal(done.error, null);
      const later = await store.events(id, { afterId: events[1]!.id, limit: 2 });
      assert.deepEqual(
        later.map((e) => e.message),
        ['step 2', 'step 3'],
      );
      assert.ok(events.every((e, i) => i === 0 || e.id > events[i - 1]!.id));
    });
  });
}

describe('job leases (postgres)', () => {
  const pgBackend = backends.find((b) => b.name === 'postgres')!;
  test('one holder at a time; a lapsed lease can be broken once and taken over', async (t) => {
    const place = await pgBackend.fresh();
    t.after(() => place.cleanup());
    const store = new PostgresJobStore(place.pool!);
    const id = newJobId();
    await store.create({ id, base_model: 'base', hyperparameters: FINE_TUNE_DEFAULTS, spec: SPEC });
    assert.ok(await store.claim(id, 'w1', 30, 11));
    assert.equal(await store.claim(id, 'w2', 30, 12), undefined, 'a live lease is not taken');
    assert.deepEqual(await store.renewLease(id, 'w1', 30), { held: true, cancelRequested: false });
    await store.requestCancel(id);
    assert.deepEqual(await store.renewLease(id, 'w1', 30), { held: true, cancelRequested: true });
    assert.deepEqual(await store.renewLease(id, 'w2', 30), { held: false, cancelRequested: false });
    assert.deepEqual(await store.expiredLeases(), []);
    // Let w1's lease lapse.
    await store.renewLease(id, 'w1', 0.001);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(
      (await store.expiredLeases()).map((l) => [l.id, l.lease_owner]),
      [[id, 'w1']],
    );
    const [broken, again] = await Promise.all([store.breakLease(id, 'w1'), store.breakLease(id, 'w1')]);
    assert.equal(Number(broken) + Number(again), 1, 'exactly one reaper breaks it');
    const taken = await store.claim(id, 'w2', 30, 12);
    assert.equal(taken?.attempts, 2);
    assert.equal(taken?.crashes, 1);
    assert.deepEqual(await store.renewLease(id, 'w1', 30), { held: false, cancelRequested: false }, 'the old holder learns it lost the job');
    await store.transition(id, ['validating_files'], 'cancelled', { finished: true });
    assert.equal(await store.claim(id, 'w3', 30, 13), undefined, 'a finished job is not claimed');
  });
});
