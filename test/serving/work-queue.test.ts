import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkCancelledError, WorkQueue, WorkQueueFullError } from '../../src/serving/work-queue.ts';

/** A task that finishes when the test says so. */
function gate<T>(value: T) {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  let started = false;
  return {
    task: async () => {
      started = true;
      await opened;
      return value;
    },
    open,
    started: () => started,
  };
}

test('runs at most `concurrency` tasks at once, starts waiting ones in arrival order as slots free', async () => {
  const q = new WorkQueue({ concurrency: 2, maxQueue: 2 });
  const [a, b, c, d] = [gate('a'), gate('b'), gate('c'), gate('d')];
  const results = [a, b, c, d].map((g) => q.run(g.task));
  assert.deepEqual([a.started(), b.started(), c.started(), d.started()], [true, true, false, false]);
  assert.equal(q.running, 2);
  assert.equal(q.queued, 2);
  b.open();
  assert.equal(await results[1], 'b');
  assert.deepEqual([c.started(), d.started()], [true, false]);
  a.open();
  await results[0];
  assert.equal(d.started(), true);
  c.open();
  d.open();
  assert.deepEqual(await Promise.all(results), ['a', 'b', 'c', 'd']);
  assert.equal(q.running + q.queued, 0);
});

test('past the queue: WorkQueueFullError at once, with a retry estimate from measured task time', async () => {
  let clock = 0;
  const q = new WorkQueue({ concurrency: 1, maxQueue: 1, now: () => clock });
  // One measured task of 3 s.
  const first = gate(1);
  const done = q.run(first.task);
  clock = 3000;
  first.open();
  await done;
  const running = gate(2);
  const waiting = gate(3);
  const r1 = q.run(running.task);
  const r2 = q.run(waiting.task);
  assert.throws(
    () => q.run(gate(4).task),
    (e: unknown) => e instanceof WorkQueueFullError && e.retryAfterSeconds === 6,
  );
  running.open();
  waiting.open();
  assert.deepEqual(await Promise.all([r1, r2]), [2, 3]);
  assert.equal(await q.run(async () => 5), 5, 'room again once the queue drained');
});

test('a waiting task whose signal aborts leaves the queue and never runs', async () => {
  const q = new WorkQueue({ concurrency: 1, maxQueue: 2 });
  const busy = gate('busy');
  const running = q.run(busy.task);
  const controller = new AbortController();
  const cancelled = gate('cancelled');
  const pending = q.run(cancelled.task, controller.signal);
  assert.equal(q.queued, 1);
  controller.abort();
  await assert.rejects(pending, WorkCancelledError);
  assert.equal(q.queued, 0);
  busy.open();
  await running;
  assert.equal(cancelled.started(), false);
});

test('a failing task frees its slot', async () => {
  const q = new WorkQueue({ concurrency: 1, maxQueue: 1 });
  await assert.rejects(
    q.run(async () => {
      throw new Error('decoder failed');
    }),
    /decoder failed/,
  );
  assert.equal(await q.run(async () => 'next'), 'next');
});
