import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Batcher, InferenceTimeoutError, QueueFullError, RequestCancelledError, type BatcherOptions } from '../../src/runtime/batcher.ts';
import { ExecutionLane } from '../../src/runtime/execution-lane.ts';
import type { InferenceRequest, InferenceResult } from '../../src/runtime/types.ts';

const OPTS: BatcherOptions = { enabled: true, maxBatch: 4, maxWaitMs: 5, maxQueue: 100, timeoutMs: 5_000 };

function req(question: string): InferenceRequest {
  return { patches: new Float32Array(4), question, params: { temperature: 0, topP: 1, maxTokens: 8 } };
}

/** A model that takes `ms` per batch and echoes each question, recording batch sizes. */
function model(ms: number) {
  const batches: string[][] = [];
  const run = async (reqs: InferenceRequest[]): Promise<InferenceResult[]> => {
    batches.push(reqs.map((r) => r.question));
    await new Promise((r) => setTimeout(r, ms));
    return reqs.map((r) => ({
      text: r.question,
      answer: r.question,
      reasoning: '',
      promptTokens: 1,
      completionTokens: 1,
      finishReason: 'stop',
      timings: { visionMs: 0, decodeMs: 0 },
    }));
  };
  return { run, batches };
}

test('concurrent requests share batches of at most maxBatch, each gets its own answer', async () => {
  const m = model(20);
  const batcher = new Batcher(m.run, OPTS);
  const done = await Promise.all(Array.from({ length: 10 }, (_, i) => batcher.enqueue(req(`q${i}`)).done));
  done.forEach((d, i) => assert.equal(d.result.answer, `q${i}`));
  assert.ok(m.batches.every((b) => b.length <= 4));
  assert.deepEqual(
    m.batches.map((b) => b.length),
    [4, 4, 2],
  );
  assert.equal(done[0]!.batchSize, 4);
  assert.deepEqual(
    m.batches.flat(),
    Array.from({ length: 10 }, (_, i) => `q${i}`),
    'FIFO order',
  );
});

test('under sparse traffic a lone request leaves at once', async () => {
  const m = model(0);
  const batcher = new Batcher(m.run, { ...OPTS, maxWaitMs: 200 });
  const d = await batcher.enqueue(req('alone')).done;
  assert.ok(d.queueMs < 100, `queued ${d.queueMs} ms`);
});

test('a request close behind another waits up to maxWaitMs for company, then leaves alone', async () => {
  const m = model(0);
  // "Close behind" means within maxWaitMs of the previous arrival; 400 ms keeps a loaded machine's
  // event-loop stalls from turning the second request into a sparse one.
  const batcher = new Batcher(m.run, { ...OPTS, maxWaitMs: 400 });
  await batcher.enqueue(req('first')).done;
  const started = performance.now();
  const d = await batcher.enqueue(req('second')).done;
  const elapsed = performance.now() - started;
  assert.ok(elapsed >= 390 && elapsed < 5000, `took ${elapsed} ms`);
  assert.ok(d.queueMs >= 390);
  assert.deepEqual(m.batches, [['first'], ['second']]);
});

test('after a batch of several, the first request of the next wave waits for the rest (closed-loop clients)', async () => {
  const m = model(0);
  const batcher = new Batcher(m.run, { ...OPTS, maxWaitMs: 40 });
  await Promise.all(['a', 'b', 'c'].map((q) => batcher.enqueue(req(q)).done));
  await new Promise((r) => setTimeout(r, 60)); // longer than maxWaitMs: the gap alone looks sparse
  const first = batcher.enqueue(req('d')).done;
  await new Promise((r) => setTimeout(r, 10));
  await Promise.all([first, batcher.enqueue(req('e')).done]);
  assert.deepEqual(m.batches, [
    ['a', 'b', 'c'],
    ['d', 'e'],
  ]);
  // …and once a batch of one has run, a lone request after a gap leaves at once again.
  await new Promise((r) => setTimeout(r, 60));
  const lone = await batcher.enqueue(req('f')).done;
  assert.equal(lone.batchSize, 1);
  await new Promise((r) => setTimeout(r, 60));
  const again = await batcher.enqueue(req('g')).done;
  assert.ok(again.queueMs < 30, `a lone client after a batch of one queued ${again.queueMs} ms`);
});

test('batching off: every request runs alone', async () => {
  const m = model(5);
  const batcher = new Batcher(m.run, { ...OPTS, enabled: false });
  await Promise.all(Array.from({ length: 5 }, (_, i) => batcher.enqueue(req(`q${i}`)).done));
  assert.deepEqual(
    m.batches.map((b) => b.length),
    [1, 1, 1, 1, 1],
  );
});

test('a full queue refuses at once with a Retry-After estimate', async () => {
  const m = model(50);
  const batcher = new Batcher(m.run, { ...OPTS, maxBatch: 1, maxQueue: 2, maxWaitMs: 0 });
  const first = batcher.enqueue(req('running'));
  await new Promise((r) => setTimeout(r, 5)); // first is now running, queue empty
  const waiting = [batcher.enqueue(req('w1')), batcher.enqueue(req('w2'))];
  assert.throws(
    () => batcher.enqueue(req('overflow')),
    (e: unknown) => e instanceof QueueFullError && e.retryAfterSeconds >= 1,
  );
  await Promise.all([first.done, ...waiting.map((w) => w.done)]);
  // Room again once the queue drained.
  await batcher.enqueue(req('later')).done;
});

test('a request past its deadline fails with InferenceTimeoutError; others are unaffected', async () => {
  const m = model(80);
  const batcher = new Batcher(m.run, { ...OPTS, maxBatch: 1, maxWaitMs: 0, timeoutMs: 100 });
  const a = batcher.enqueue(req('a'));
  const b = batcher.enqueue(req('b')); // waits 80 ms, then runs 80 ms: past 100 ms
  await a.done;
  await assert.rejects(b.done, InferenceTimeoutError);
  await batcher.idle();
});

test('a cancelled request leaves the queue and never reaches the model', async () => {
  const m = model(30);
  const batcher = new Batcher(m.run, { ...OPTS, maxBatch: 1, maxWaitMs: 0 });
  const a = batcher.enqueue(req('a'));
  const b = batcher.enqueue(req('b'));
  b.cancel();
  await assert.rejects(b.done, RequestCancelledError);
  await a.done;
  await batcher.idle();
  assert.deepEqual(m.batches, [['a']]);
});

test('a failing batch rejects each of its requests; the batcher keeps serving', async () => {
  let fail = true;
  const batcher = new Batcher(async (reqs) => {
    if (fail) throw new Error('boom');
    return model(0).run(reqs);
  }, OPTS);
  const failed = await Promise.allSettled([batcher.enqueue(req('x')).done, batcher.enqueue(req('y')).done]);
  assert.ok(failed.every((r) => r.status === 'rejected' && (r.reason as Error).message === 'boom'));
  fail = false;
  assert.equal((await batcher.enqueue(req('z')).done).result.answer, 'z');
});

test('a runtime returning the wrong number of results fails the batch instead of mismatching answers', async () => {
  const batcher = new Batcher(async () => [], OPTS);
  await assert.rejects(batcher.enqueue(req('x')).done, /0 results for a batch of 1/);
});

test('idle() resolves once queued and running work is done', async () => {
  const m = model(20);
  const batcher = new Batcher(m.run, OPTS);
  const tickets = Array.from({ length: 6 }, (_, i) => batcher.enqueue(req(`q${i}`)));
  let settled = 0;
  for (const t of tickets) void t.done.then(() => settled++);
  await batcher.idle();
  await Promise.resolve();
  assert.equal(settled, 6);
  assert.equal(batcher.busy, false);
  assert.equal(batcher.queued, 0);
});

test('batchers sharing a lane never run at once, and a waiting model takes everything queued meanwhile', async () => {
  const lane = new ExecutionLane();
  let running = 0;
  let overlap = false;
  const batches: string[][] = [];
  const run =
    (ms: number) =>
    async (reqs: InferenceRequest[]): Promise<InferenceResult[]> => {
      running++;
      overlap ||= running > 1;
      batches.push(reqs.map((r) => r.question));
      await new Promise((r) => setTimeout(r, ms));
      running--;
      return reqs.map((r) => ({
        text: r.question,
        answer: r.question,
        reasoning: '',
        promptTokens: 1,
        completionTokens: 1,
        finishReason: 'stop',
        timings: { visionMs: 0, decodeMs: 0 },
      }));
    };
  const a = new Batcher(run(150), { ...OPTS, maxWaitMs: 0, lane });
  const b = new Batcher(run(10), { ...OPTS, maxWaitMs: 0, lane });
  const first = a.enqueue(req('a1')).done; // takes the lane for 150 ms
  await new Promise((r) => setTimeout(r, 5));
  // b's requests arrive one by one while a runs; without the lane the first would leave alone.
  const bs: Promise<unknown>[] = [];
  for (const q of ['b1', 'b2', 'b3']) {
    bs.push(b.enqueue(req(q)).done);
    await new Promise((r) => setTimeout(r, 10));
  }
  const a2 = a.enqueue(req('a2')).done; // queued behind b, which asked for the lane first
  await Promise.all([first, a2, ...bs]);
  assert.equal(overlap, false, 'two batches ran at the same time');
  assert.deepEqual(batches, [['a1'], ['b1', 'b2', 'b3'], ['a2']]);
  await Promise.all([a.idle(), b.idle()]);
  assert.equal(lane.busy, false);
});

test('a model whose queued requests were all cancelled while waiting for the lane lets the next one run', async () => {
  const lane = new ExecutionLane();
  const a = model(100);
  const b = model(0);
  const c = model(0);
  const ba = new Batcher(a.run, { ...OPTS, maxWaitMs: 0, lane });
  const bb = new Batcher(b.run, { ...OPTS, maxWaitMs: 0, lane });
  const bc = new Batcher(c.run, { ...OPTS, maxWaitMs: 0, lane });
  const first = ba.enqueue(req('a')).done;
  await new Promise((r) => setTimeout(r, 5));
  const gone = bb.enqueue(req('b'));
  gone.done.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 5));
  const third = bc.enqueue(req('c')).done;
  gone.cancel();
  await Promise.all([first, third]);
  await assert.rejects(gone.done, RequestCancelledError);
  assert.deepEqual([a.batches, b.batches, c.batches], [[['a']], [], [['c']]]);
  assert.equal(lane.busy, false);
});
