import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/audit/logger.ts';
import { ApiError } from '../../src/errors.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import { ModelRegistry } from '../../src/runtime/model-registry.ts';
import { Batcher, RequestCancelledError } from '../../src/runtime/batcher.ts';
import { PromptTooLongError } from '../../src/runtime/prompt.ts';
import { firstLoadedModel, type ServedResponse } from '../../src/serving/variant-selection.ts';
import { VqaService } from '../../src/serving/vqa.service.ts';
import { FakeRuntime } from '../helpers/fake-runtime.ts';
import { smallPng } from '../helpers/images.ts';

function setup(delayMs: number, recorder?: { recordResponse(r: ServedResponse): void }) {
  const registry = new ModelRegistry({
    loader: async () => {
      throw new Error('not used');
    },
    executionProviders: ['cpu'],
    createBatcher: (rt) => new Batcher((reqs) => rt.generateBatch(reqs), { enabled: true, maxBatch: 1, maxWaitMs: 0, maxQueue: 8, timeoutMs: 5_000 }),
  });
  const service = new VqaService({
    registry,
    selector: firstLoadedModel,
    ...(recorder ? { recorder } : {}),
    metrics: new Metrics({ collectProcessMetrics: false }),
    limits: { maxImageBytes: 1 << 20, maxInputPixels: 1 << 24 },
    logger: silentLogger,
  });
  return { registry, service, runtime: new FakeRuntime('m1', {}, { delayMs }) };
}

test('a client that goes away leaves the queue: its request never reaches the model', async () => {
  const { registry, service, runtime } = setup(80);
  await registry.install(runtime);
  const image = await smallPng();
  const first = service.answer({ image, question: 'first one' }, { audit: {} });
  // Only once the first is running (the model takes 80 ms) does the second start; otherwise the
  // two race through image preprocessing and the second may reach the model first.
  for (let waited = 0; runtime.batches.length === 0 && waited < 2_000; waited += 2) await new Promise((r) => setTimeout(r, 2));
  const controller = new AbortController();
  const second = service.answer({ image, question: 'second one' }, { audit: {}, signal: controller.signal });
  await new Promise((r) => setTimeout(r, 20));
  controller.abort();
  await assert.rejects(second, RequestCancelledError);
  assert.equal((await first).result.answer, 'm1 answer 2');
  assert.deepEqual(runtime.batches, [1], 'only the first request ran');
  await registry.close();
});

test('records each response for feedback; a failing recorder does not cost the answer', async () => {
  const recorded: ServedResponse[] = [];
  const { registry, service, runtime } = setup(0, { recordResponse: (r) => void recorded.push(r) });
  await registry.install(runtime);
  const audit: Record<string, string> = {};
  const out = await service.answer({ image: await smallPng(), question: 'q' }, { audit, keyId: 'key_x' });
  assert.equal(recorded.length, 1);
  assert.equal(recorded[0]!.responseId, out.id);
  assert.equal(recorded[0]!.clientKeyId, 'key_x');
  assert.deepEqual([audit.model, audit.variant], ['m1', 'm1']);
  assert.match(audit.imageSha256!, /^[0-9a-f]{64}$/);

  const failing = setup(0, {
    recordResponse: () => {
      throw new Error('disk full');
    },
  });
  await failing.registry.install(failing.runtime);
  const ok = await failing.service.answer({ image: await smallPng(), question: 'q' }, { audit: {} });
  assert.equal(ok.model, 'm1');
  await registry.close();
  await failing.registry.close();
});

test('no model loaded → 503 model_unavailable; the lease is returned even when preprocessing fails', async () => {
  const { registry, service, runtime } = setup(0);
  await assert.rejects(
    service.answer({ image: await smallPng(), question: 'q' }, { audit: {} }),
    (e: unknown) => e instanceof ApiError && e.code === 'model_unavailable',
  );
  await registry.install(runtime);
  await assert.rejects(service.answer({ image: Buffer.from('garbage bytes'), question: 'q' }, { audit: {} }), /PNG, JPEG or DICOM/);
  // Unloading disposes at once only if no lease is outstanding.
  await registry.unload('m1');
  await registry.settled();
  assert.equal(runtime.disposed, true);
});

test("a question that does not fit the model is refused before preprocessing or queueing, with the model's counts", async () => {
  const { registry, service } = setup(0);
  const runtime = new FakeRuntime('m1', {}, { maxPromptTokens: 5 });
  await registry.install(runtime);
  const audit: Record<string, string> = {};
  await assert.rejects(
    service.answer({ image: Buffer.from('not even an image'), question: 'one two three four five six' }, { audit }),
    (e: unknown) => e instanceof PromptTooLongError && e.promptTokens === 6 && e.maxPromptTokens === 5 && e.model === 'm1',
  );
  assert.deepEqual(runtime.batches, [], 'nothing reached the model');
  assert.equal(audit.model, 'm1');
  // The lease was returned: the model unloads and disposes at once.
  await registry.unload('m1');
  await registry.settled();
  assert.equal(runtime.disposed, true);
  await registry.close();
});
