// The lane every model's batcher shares: one holder at a time, waiters woken in arrival order,
// and a woken waiter with nothing left to run passes the turn on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecutionLane, type LaneUser } from '../../src/runtime/execution-lane.ts';

/** A user that, when woken, takes the lane only if it still `wants` to. */
function user(lane: ExecutionLane, log: string[], name: string, wants = true): LaneUser & { wants: boolean } {
  const u = {
    wants,
    laneFree() {
      log.push(`${name} woken`);
      if (u.wants && lane.tryAcquire(u)) log.push(`${name} runs`);
    },
  };
  return u;
}

test('one holder at a time; waiters are woken in arrival order when it releases', () => {
  const lane = new ExecutionLane();
  const log: string[] = [];
  const a = user(lane, log, 'a');
  const b = user(lane, log, 'b');
  const c = user(lane, log, 'c');
  assert.equal(lane.tryAcquire(a), true);
  assert.equal(lane.busy, true);
  assert.equal(lane.tryAcquire(c), false);
  assert.equal(lane.tryAcquire(b), false);
  assert.equal(lane.tryAcquire(c), false, 'asking again keeps its place');
  lane.release(a);
  assert.deepEqual(log, ['c woken', 'c runs']);
  lane.release(c);
  assert.deepEqual(log, ['c woken', 'c runs', 'b woken', 'b runs']);
  lane.release(b);
  assert.equal(lane.busy, false);
});

test('a woken waiter with nothing to run passes the turn to the next one', () => {
  const lane = new ExecutionLane();
  const log: string[] = [];
  const a = user(lane, log, 'a');
  const idle = user(lane, log, 'idle');
  const b = user(lane, log, 'b');
  lane.tryAcquire(a);
  lane.tryAcquire(idle);
  lane.tryAcquire(b);
  idle.wants = false;
  lane.release(a);
  assert.deepEqual(log, ['idle woken', 'b woken', 'b runs']);
  lane.release(b);
  assert.deepEqual(log.length, 3, 'idle is not woken again: it left the queue when its turn came');
});

test('only the holder can release', () => {
  const lane = new ExecutionLane();
  const log: string[] = [];
  const a = user(lane, log, 'a');
  const b = user(lane, log, 'b');
  assert.throws(() => lane.release(a), /does not hold it/);
  lane.tryAcquire(a);
  assert.throws(() => lane.release(b), /does not hold it/);
});
