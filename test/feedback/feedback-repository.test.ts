// One suite, two stores: the embedded SQLite FeedbackStore and the Postgres one give the same
// answers to the feedback route and /admin/ab/report.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FeedbackInputError, FeedbackStore, ResponseNotFoundError, type FeedbackRepository } from '../../src/feedback/feedback-store.ts';
import { PostgresFeedbackStore } from '../../src/feedback/feedback-store.postgres.ts';
import { storeBackends } from '../helpers/store-backends.ts';

const { backends } = storeBackends();

for (const backend of backends) {
  describe(`feedback store (${backend.name})`, () => {
    const open = async (t: { after(fn: () => Promise<void>): void }, now?: () => Date) => {
      const place = await backend.fresh();
      let instances = 0;
      const make = (): FeedbackRepository =>
        place.pool
          ? new PostgresFeedbackStore(place.pool, { dataDir: place.dataDir, instance: `r${++instances}`, ...(now ? { now } : {}) })
          : FeedbackStore.open(place.dataDir, now ? { now } : {});
      const store = make();
      t.after(async () => {
        await store.close();
        await place.cleanup();
      });
      return { store, make };
    };

    test('feedback on a recorded response is stored and read back; the correct answer only via getFeedback', async (t) => {
      const { store } = await open(t, () => new Date('2025-02-03T04:05:06Z'));
      await store.recordResponse({ responseId: 'r1', model: 'clinvqa-grpo', variant: 'grpo', tableVersion: 3, clientKeyId: 'key_abc', latencyMs: 120 });
      const record = await store.recordFeedback({ responseId: 'r1', correct: false, correctAnswer: 'left lower lobe pneumonia', keyId: 'key_def' });
      assert.deepEqual(record, {
        responseId: 'r1',
        model: 'clinvqa-grpo',
        variant: 'grpo',
        correct: false,
        rating: null,
        recordedAt: '2025-02-03T04:05:06.000Z',
      });
      assert.equal(JSON.stringify(record).includes('pneumonia'), false);
      assert.equal((await store.getFeedback('r1'))!.correctAnswer, 'left lower lobe pneumonia');
      assert.equal(await store.getFeedback('nope'), undefined);
    });

    test('unknown response id → ResponseNotFoundError, nothing stored; bad input → FeedbackInputError', async (t) => {
      const { store } = await open(t);
      await assert.rejects(async () => store.recordFeedback({ responseId: 'ghost', correct: true }), ResponseNotFoundError);
      assert.equal(await store.getFeedback('ghost'), undefined);
      assert.deepEqual(await store.variantStats(), []);
      await store.recordResponse({ responseId: 'r1', model: 'm', variant: 'v', latencyMs: 10 });
      await assert.rejects(async () => store.recordResponse({ responseId: 'r2', model: 'm', variant: 'v', latencyMs: Number.NaN }), FeedbackInputError);
      await assert.rejects(async () => store.recordFeedback({ responseId: 'r1' }), FeedbackInputError);
      await assert.rejects(async () => store.recordFeedback({ responseId: 'r1', rating: 2.5 }), FeedbackInputError);
    });

    test('feedback again replaces the earlier one (last wins) and counts once', async (t) => {
      const { store } = await open(t);
      await store.recordResponse({ responseId: 'r1', model: 'm', variant: 'v', latencyMs: 10 });
      await store.recordFeedback({ responseId: 'r1', correct: true, correctAnswer: 'yes' });
      const second = await store.recordFeedback({ responseId: 'r1', rating: 2 });
      assert.equal(second.correct, null);
      assert.equal(second.rating, 2);
      assert.equal((await store.getFeedback('r1'))!.correctAnswer, null);
      const [stats] = await store.variantStats();
      assert.equal(stats!.feedback, 1);
      assert.equal(stats!.judged, 0);
    });

    test('variantStats: requests, models, nearest-rank p50/p95, feedback, judged, correct; all writers count', async (t) => {
      const { store, make } = await open(t);
      // A second handle on the same store stands for another replica (Postgres) or a reopen (SQLite).
      const other = backend.name === 'postgres' ? make() : store;
      t.after(async () => {
        if (other !== store) await other.close();
      });
      const order = Array.from({ length: 100 }, (_, i) => (i * 37) % 100);
      for (const i of order)
        await (i % 2 ? other : store).recordResponse({ responseId: `a${i}`, model: i < 70 ? 'grpo' : 'grpo-v2', variant: 'a', latencyMs: i + 1 });
      for (let i = 0; i < 3; i++) await store.recordResponse({ responseId: `b${i}`, model: 'sft', variant: 'b', latencyMs: 10 * (i + 1) });
      for (let i = 0; i < 10; i++) await other.recordFeedback({ responseId: `a${i}`, correct: i < 8 });
      await store.recordFeedback({ responseId: 'a50', rating: 5 });
      await store.recordFeedback({ responseId: 'b0', correct: false, rating: 1 });
      const stats = new Map((await store.variantStats()).map((s) => [s.variant, s]));
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
      assert.deepEqual(stats.get('b'), { variant: 'b', models: ['sft'], requests: 3, latencyP50Ms: 20, latencyP95Ms: 30, feedback: 1, judged: 1, correct: 0 });
    });

    test('persists across reopening', async (t) => {
      const { store, make } = await open(t);
      await store.recordResponse({ responseId: 'r1', model: 'm', variant: 'v', latencyMs: 7.5 });
      await store.recordFeedback({ responseId: 'r1', correct: true });
      await store.close();
      const again = make();
      t.after(async () => again.close());
      assert.equal((await again.getFeedback('r1'))!.correct, true);
      assert.equal((await again.variantStats())[0]!.latencyP50Ms, 7.5);
    });
  });
}

describe('feedback store faults (postgres)', () => {
  test('a response recorded just before a kill -9 is not lost: the restarted replica sends it', async (t) => {
    const place = await backends.find((b) => b.name === 'postgres')!.fresh();
    t.after(() => place.cleanup());
    // Never flushed, never closed: as if the process died right after answering.
    const crashed = new PostgresFeedbackStore(place.pool!, { dataDir: place.dataDir, instance: 'a', flushIntervalMs: 3_600_000 });
    crashed.recordResponse({ responseId: 'answered', model: 'm', variant: 'v', latencyMs: 3 });
    const restarted = new PostgresFeedbackStore(place.pool!, { dataDir: place.dataDir, instance: 'a' });
    t.after(async () => {
      await restarted.close();
      await crashed.close();
    });
    const record = await restarted.recordFeedback({ responseId: 'answered', correct: true });
    assert.equal(record.variant, 'v');
  });
});
