import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuplicateResponseError, FEEDBACK_DB_FILE, FeedbackInputError, FeedbackStore, ResponseNotFoundError } from '../../src/feedback/feedback-store.ts';

function openStore(t: { after(fn: () => void): void }, now?: () => Date): { store: FeedbackStore; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clinvqa-feedback-'));
  const store = FeedbackStore.open(dir, now ? { now } : {});
  t.after(() => {
    store.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { store, dir };
}

test('feedback on a recorded response is stored and read back; the correct answer only via getFeedback', (t) => {
  const { store } = openStore(t, () => new Date('2025-02-03T04:05:06Z'));
  store.recordResponse({ responseId: 'r1', model: 'clinvqa-grpo', variant: 'grpo', tableVersion: 3, clientKeyId: 'key_abc', latencyMs: 120 });
  const record = store.recordFeedback({ responseId: 'r1', correct: false, correctAnswer: 'left lower lobe pneumonia', keyId: 'key_def' });
  assert.deepEqual(record, {
    responseId: 'r1',
    model: 'clinvqa-grpo',
    variant: 'grpo',
    correct: false,
    rating: null,
    recordedAt: '2025-02-03T04:05:06.000Z',
  });
  assert.equal(JSON.stringify(record).includes('pneumonia'), false);
  assert.equal(store.getFeedback('r1')!.correctAnswer, 'left lower lobe pneumonia');
  assert.equal(store.getFeedback('nope'), undefined);
});

test('unknown response id → ResponseNotFoundError, and nothing is stored', (t) => {
  const { store } = openStore(t);
  assert.throws(() => store.recordFeedback({ responseId: 'ghost', correct: true }), ResponseNotFoundError);
  assert.equal(store.getFeedback('ghost'), undefined);
  assert.deepEqual(store.variantStats(), []);
});

test('feedback again replaces the earlier one (last wins) and counts once', (t) => {
  const { store } = openStore(t);
  store.recordResponse({ responseId: 'r1', model: 'm', variant: 'v', latencyMs: 10 });
  store.recordFeedback({ responseId: 'r1', correct: true, correctAnswer: 'yes' });
  const second = store.recordFeedback({ responseId: 'r1', rating: 2 });
  assert.equal(second.correct, null, 'the replacement did not say correct/incorrect');
  assert.equal(second.rating, 2);
  assert.equal(store.getFeedback('r1')!.correctAnswer, null);
  const [stats] = store.variantStats();
  assert.equal(stats!.feedback, 1);
  assert.equal(stats!.judged, 0);
});

test('bad input is refused with typed errors', (t) => {
  const { store } = openStore(t);
  store.recordResponse({ responseId: 'r1', model: 'm', variant: 'v', latencyMs: 10 });
  assert.throws(() => store.recordResponse({ responseId: 'r1', model: 'm', variant: 'v', latencyMs: 5 }), DuplicateResponseError);
  assert.throws(() => store.recordResponse({ responseId: 'r2', model: 'm', variant: 'v', latencyMs: Number.NaN }), FeedbackInputError);
  assert.throws(() => store.recordResponse({ responseId: '', model: 'm', variant: 'v', latencyMs: 1 }), FeedbackInputError);
  assert.throws(() => store.recordFeedback({ responseId: 'r1' }), FeedbackInputError);
  assert.throws(() => store.recordFeedback({ responseId: 'r1', rating: 6 }), FeedbackInputError);
  assert.throws(() => store.recordFeedback({ responseId: 'r1', rating: 2.5 }), FeedbackInputError);
  assert.throws(() => store.recordFeedback({ responseId: 'r1', correct: true, correctAnswer: 'x'.repeat(2001) }), FeedbackInputError);
});

test('variantStats: requests, models, nearest-rank p50/p95, feedback, judged, correct', (t) => {
  const { store } = openStore(t);
  // Variant a: latencies 1..100 ms (shuffled order), answered by two models over time.
  const order = Array.from({ length: 100 }, (_, i) => (i * 37) % 100);
  for (const i of order) store.recordResponse({ responseId: `a${i}`, model: i < 70 ? 'grpo' : 'grpo-v2', variant: 'a', latencyMs: i + 1 });
  for (let i = 0; i < 3; i++) store.recordResponse({ responseId: `b${i}`, model: 'sft', variant: 'b', latencyMs: 10 * (i + 1) });
  for (let i = 0; i < 10; i++) store.recordFeedback({ responseId: `a${i}`, correct: i < 8 });
  store.recordFeedback({ responseId: 'a50', rating: 5 });
  store.recordFeedback({ responseId: 'b0', correct: false, rating: 1 });
  const stats = new Map(store.variantStats().map((s) => [s.variant, s]));
  assert.deepEqual(stats.get('a'), {
    variant: 'a',
    models: ['grpo', 'grpo-v2'],
    requests: 100,
    latencyP50Ms: 50,
    latencyP95Ms: 95,
    feedback: 11,
    judged: 10,
    correct: 8,
  });
  assert.deepEqual(stats.get('b'), {
    variant: 'b',
    models: ['sft'],
    requests: 3,
    latencyP50Ms: 20,
    latencyP95Ms: 30,
    feedback: 1,
    judged: 1,
    correct: 0,
  });
});

test('the database is WAL and persists across reopen', (t) => {
  const { store, dir } = openStore(t);
  store.recordResponse({ responseId: 'r1', model: 'm', variant: 'v', latencyMs: 7.5 });
  store.recordFeedback({ responseId: 'r1', correct: true });
  store.close();
  assert.ok(fs.existsSync(path.join(dir, FEEDBACK_DB_FILE)));
  const again = FeedbackStore.open(dir);
  t.after(() => again.close());
  assert.equal(again.getFeedback('r1')!.correct, true);
  assert.ok(fs.existsSync(path.join(dir, `${FEEDBACK_DB_FILE}-wal`)), 'WAL file present while open');
});
