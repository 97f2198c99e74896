import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';

import { ModelRegistry, type ModelLease } from '../../src/runtime/model-registry.ts';
import { Batcher } from '../../src/runtime/batcher.ts';
import type { InferenceRequest, InferenceResult, ModelRuntime, PreparedImage, RuntimeLoader } from '../../src/runtime/types.ts';

/** A controllable stand-in for an ONNX runtime: answers with its own version, and fails if used after dispose. */
class FakeRuntime implements ModelRuntime {
  readonly manifest: Record<string, unknown>;
  readonly imageConfig = { imageSize: 32, patchSize: 16, mean: [0.5], std: [0.5] };
  readonly maxBatch = 4;
  readonly executionProvider = 'cpu';
  disposeCount = 0;
  batches = 0;
  usedAfterDispose = false;
  /** While set, generateBatch waits for it: lets a test hold requests in flight. */
  gate: Promise<void> | undefined;
  delayMs = 0;

  constructor(
    readonly id: string,
    readonly version: number,
  ) {
    this.manifest = { id, version: String(version) };
  }

  async prepareImage(): Promise<PreparedImage> {
    return { patches: new Float32Array(0) };
  }

  checkPrompt(): number {
    return 1;
  }

  async generateBatch(reqs: InferenceRequest[]): Promise<InferenceResult[]> {
    if (this.disposeCount > 0) this.usedAfterDispose = true;
    this.batches++;
    if (this.gate) await this.gate;
    if (this.delayMs > 0) await sleep(this.delayMs);
    if (this.disposeCount > 0) this.usedAfterDispose = true;
    return reqs.map((r) => ({
      text: `<answer>${this.id}@${this.version}</answer>`,
      answer: `${this.id}@${this.version}`,
      reasoning: r.question,
      promptTokens: 1,
      completionTokens: 1,
      finishReason: 'stop',
      timings: { visionMs: 0, decodeMs: 0 },
    }));
  }

  async dispose(): Promise<void> {
    this.disposeCount++;
  }
}

function gate(): { promise: Promise<void>; open(): void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

const request = (question = 'q'): InferenceRequest => ({
  patches: new Float32Array(4),
  question,
  params: { temperature: 0, topP: 1, maxTokens: 8 },
});

/** A registry whose loader makes a new FakeRuntime version per load of the same package directory. */
function setup(options: { loaderDelayMs?: number; beforeLoad?: (dir: string) => Promise<void> } = {}) {
  const made: FakeRuntime[] = [];
  const versions = new Map<string, number>();
  const logs: { message: string; fields?: Record<string, unknown> }[] = [];
  let activeLoads = 0;
  let maxActiveLoads = 0;
  const providersSeen: string[][] = [];
  const threadsSeen: (number | undefined)[] = [];
  const loader: RuntimeLoader = async (packageDir, opts) => {
    activeLoads++;
    maxActiveLoads = Math.max(maxActiveLoads, activeLoads);
    providersSeen.push(opts.executionProviders);
    threadsSeen.push(opts.intraOpThreads);
    try {
      await options.beforeLoad?.(packageDir);
      if (options.loaderDelayMs) await sleep(options.loaderDelayMs);
      const id = packageDir.split('/').pop()!;
      const version = (versions.get(id) ?? 0) + 1;
      versions.set(id, version);
      const runtime = new FakeRuntime(id, version);
      made.push(runtime);
      return runtime;
    } finally {
      activeLoads--;
    }
  };
  const registry = new ModelRegistry({
    loader,
    executionProviders: ['cuda', 'cpu'],
    intraOpThreads: 3,
    createBatcher: (runtime) =>
      new Batcher((reqs) => runtime.generateBatch(reqs), { enabled: true, maxBatch: runtime.maxBatch, maxWaitMs: 1, maxQueue: 10_000, timeoutMs: 10_000 }),
    log: (message, fields) => logs.push({ message, fields }),
  });
  return { registry, made, logs, providersSeen, threadsSeen, maxActiveLoads: () => maxActiveLoads };
}

/** One request the way the server makes it: lease, enqueue, await, release. */
async function infer(registry: ModelRegistry, id: string): Promise<{ answer: string; leasedVersion: number }> {
  const lease = registry.acquire(id);
  if (!lease) throw new Error(`no model ${id}`);
  try {
    const { result } = await lease.model.batcher.enqueue(request()).done;
    return { answer: result.answer, leasedVersion: (lease.model.runtime as FakeRuntime).version };
  } finally {
    lease.release();
  }
}

describe('ModelRegistry', () => {
  it('loads packages, lists them by id and hands out leases', async () => {
    const { registry, providersSeen, threadsSeen, logs } = setup();
    await registry.loadPackage('models/zeta');
    const alpha = await registry.loadPackage('models/alpha');
    assert.deepEqual(
      registry.list().map((m) => m.id),
      ['alpha', 'zeta'],
    );
    assert.equal(registry.size, 2);
    assert.equal(registry.has('alpha'), true);
    assert.equal(registry.acquire('absent'), undefined);
    assert.deepEqual(providersSeen, [
      ['cuda', 'cpu'],
      ['cuda', 'cpu'],
    ]);
    assert.deepEqual(threadsSeen, [3, 3], 'the configured ORT thread count reaches the loader');
    const lease = registry.acquire('alpha')!;
    assert.equal(lease.model, alpha);
    assert.deepEqual(await infer(registry, 'alpha'), { answer: 'alpha@1', leasedVersion: 1 });
    lease.release();
    assert.deepEqual(
      logs.map((l) => l.message),
      ['model loaded', 'model loaded'],
    );
    assert.equal(logs[0]!.fields?.execution_provider, 'cpu');
    await registry.close();
  });

  it('swaps a model while requests hold leases: new requests get the new runtime at once, the old one finishes its requests and is disposed after the last lease', async () => {
    const { registry, made } = setup();
    await registry.loadPackage('models/m');
    const v1 = made[0]!;
    const hold = gate();
    v1.gate = hold.promise;
    const inFlight = [infer(registry, 'm'), infer(registry, 'm'), infer(registry, 'm')];
    await sleep(5); // let them reach the runtime
    assert.equal(v1.batches, 1);

    await registry.loadPackage('models/m'); // the replacement
    const v2 = made[1]!;
    assert.deepEqual(await infer(registry, 'm'), { answer: 'm@2', leasedVersion: 2 }, 'new requests go to the new runtime while the old is busy');
    assert.equal(v1.disposeCount, 0, 'not disposed while leases are held');

    hold.open();
    const results = await Promise.all(inFlight);
    assert.deepEqual(
      results.map((r) => r.answer),
      ['m@1', 'm@1', 'm@1'],
      'in-flight requests finish on the runtime they leased',
    );
    await registry.settled();
    assert.equal(v1.disposeCount, 1);
    assert.equal(v1.usedAfterDispose, false);
    assert.equal(v2.disposeCount, 0);
    await registry.close();
    assert.equal(v2.disposeCount, 1);
  });

  it('a lease held without any queued work still keeps the old runtime alive until released', async () => {
    const { registry, made } = setup();
    await registry.loadPackage('models/m');
    const lease = registry.acquire('m')!;
    await registry.loadPackage('models/m');
    await sleep(5);
    assert.equal(made[0]!.disposeCount, 0);
    // The request, still holding the old model, can use it.
    const { result } = await lease.model.batcher.enqueue(request()).done;
    assert.equal(result.answer, 'm@1');
    lease.release();
    lease.release(); // idempotent: must not drive the count negative or dispose twice
    await registry.settled();
    assert.equal(made[0]!.disposeCount, 1);
    assert.equal(made[0]!.usedAfterDispose, false);
    await registry.close();
  });

  it('drops no request under load across repeated swaps', async () => {
    const { registry, made } = setup({ loaderDelayMs: 3 });
    await registry.loadPackage('models/m');
    for (const r of made) r.delayMs = 2;
    const requests: Promise<{ answer: string; leasedVersion: number }>[] = [];
    const swaps: Promise<unknown>[] = [];
    for (let i = 0; i < 300; i++) {
      requests.push(infer(registry, 'm'));
      if (i % 75 === 40) swaps.push(registry.loadPackage('models/m').then(() => made.forEach((r) => (r.delayMs = 2))));
      if (i % 10 === 0) await sleep(1);
    }
    await Promise.all(swaps);
    const settled = await Promise.allSettled(requests);
    const failed = settled.filter((s) => s.status === 'rejected');
    assert.equal(failed.length, 0, `failed: ${failed.map((f) => String((f as PromiseRejectedResult).reason)).join('; ')}`);
    for (const s of settled) {
      const { answer, leasedVersion } = (s as PromiseFulfilledResult<{ answer: string; leasedVersion: number }>).value;
      assert.equal(answer, `m@${leasedVersion}`, 'answered by the runtime the request leased');
    }
    const versionsUsed = new Set(settled.map((s) => (s as PromiseFulfilledResult<{ leasedVersion: number }>).value.leasedVersion));
    assert.ok(versionsUsed.size >= 3, `traffic spanned the swaps (versions ${[...versionsUsed]})`);
    await registry.settled();
    assert.equal(made.length, 5);
    made.slice(0, -1).forEach((r) => assert.equal(r.disposeCount, 1, `v${r.version} disposed once`));
    made.forEach((r) => assert.equal(r.usedAfterDispose, false));
    assert.equal(made.at(-1)!.disposeCount, 0);
    await registry.close();
  });

  it('serialises loads: one loader call at a time, in call order', async () => {
    const order: string[] = [];
    const { registry, maxActiveLoads } = setup({
      loaderDelayMs: 5,
      beforeLoad: async (dir) => {
        order.push(dir);
      },
    });
    await Promise.all([registry.loadPackage('models/a'), registry.loadPackage('models/b'), registry.loadPackage('models/a'), registry.unload('b')]);
    assert.equal(maxActiveLoads(), 1);
    assert.deepEqual(order, ['models/a', 'models/b', 'models/a']);
    assert.deepEqual(
      registry.list().map((m) => `${m.id}@${(m.runtime as FakeRuntime).version}`),
      ['a@2'],
    );
    await registry.close();
  });

  it('ensureLoaded loads a package once however many callers ask', async () => {
    const { registry, made } = setup({ loaderDelayMs: 5 });
    const models = await Promise.all([registry.ensureLoaded('models/p'), registry.ensureLoaded('models/p'), registry.ensureLoaded('models/p')]);
    assert.equal(made.length, 1);
    assert.equal(models[0], models[1]);
    assert.equal(models[1], models[2]);
    await registry.close();
  });

  it('a failed load leaves the serving model in place', async () => {
    let fail = false;
    const { registry, made } = setup({
      beforeLoad: async () => {
        if (fail) throw new Error('hash mismatch in model.safetensors');
      },
    });
    await registry.loadPackage('models/m');
    fail = true;
    await assert.rejects(registry.loadPackage('models/m'), /hash mismatch/);
    assert.deepEqual(await infer(registry, 'm'), { answer: 'm@1', leasedVersion: 1 });
    assert.equal(made[0]!.disposeCount, 0);
    await registry.close();
  });

  it('refuses a runtime whose id differs from its directory, and disposes it', async () => {
    const stray = new FakeRuntime('other', 1);
    const registry = new ModelRegistry({
      loader: async () => stray,
      executionProviders: ['cpu'],
      createBatcher: (r) => new Batcher((reqs) => r.generateBatch(reqs), { enabled: true, maxBatch: 4, maxWaitMs: 1, maxQueue: 10, timeoutMs: 1000 }),
    });
    await assert.rejects(registry.loadPackage('models/m'), /runtime id "other" does not match its package directory "m"/);
    assert.equal(stray.disposeCount, 1);
    assert.equal(registry.size, 0);
  });

  it('disposes a freshly loaded runtime when its batcher cannot be created, keeping the old one', async () => {
    let broken = false;
    const made: FakeRuntime[] = [];
    const registry = new ModelRegistry({
      loader: async () => {
        const r = new FakeRuntime('m', made.length + 1);
        made.push(r);
        return r;
      },
      executionProviders: ['cpu'],
      createBatcher: (r) => {
        if (broken) throw new RangeError('maxBatch and maxQueue must be >= 1');
        return new Batcher((reqs) => r.generateBatch(reqs), { enabled: true, maxBatch: 4, maxWaitMs: 1, maxQueue: 10, timeoutMs: 1000 });
      },
    });
    await registry.loadPackage('models/m');
    broken = true;
    await assert.rejects(registry.loadPackage('models/m'), RangeError);
    assert.equal(made[1]!.disposeCount, 1);
    assert.equal(made[0]!.disposeCount, 0);
    assert.equal((registry.acquire('m')!.model.runtime as FakeRuntime).version, 1);
  });

  it('unloads: no new leases at once, disposal after the in-flight request', async () => {
    const { registry, made } = setup();
    await registry.loadPackage('models/m');
    const hold = gate();
    made[0]!.gate = hold.promise;
    const pending = infer(registry, 'm');
    await sleep(5);
    assert.equal(await registry.unload('m'), true);
    assert.equal(registry.acquire('m'), undefined);
    assert.equal(registry.has('m'), false);
    assert.equal(made[0]!.disposeCount, 0);
    hold.open();
    assert.equal((await pending).answer, 'm@1');
    await registry.settled();
    assert.equal(made[0]!.disposeCount, 1);
    assert.equal(await registry.unload('m'), false);
    await registry.close();
  });

  it('close waits for in-flight requests, disposes everything, then refuses loads', async () => {
    const { registry, made } = setup();
    await registry.loadPackage('models/a');
    await registry.loadPackage('models/b');
    const hold = gate();
    made[0]!.gate = hold.promise;
    const pending = infer(registry, 'a');
    await sleep(5);
    let closed = false;
    const closing = registry.close().then(() => (closed = true));
    await sleep(10);
    assert.equal(closed, false, 'close waits for the lease');
    hold.open();
    await closing;
    assert.equal((await pending).answer, 'a@1');
    assert.deepEqual(
      made.map((r) => r.disposeCount),
      [1, 1],
    );
    await assert.rejects(registry.loadPackage('models/a'), /registry is closed/);
    await assert.rejects(registry.install(new FakeRuntime('c', 1)), /registry is closed/);
  });

  it('logs a failed dispose and still settles', async () => {
    const { registry, made, logs } = setup();
    await registry.loadPackage('models/m');
    made[0]!.dispose = async () => {
      throw new Error('session already released');
    };
    await registry.unload('m');
    await registry.settled();
    assert.ok(logs.some((l) => l.message === 'model dispose failed' && l.fields?.model === 'm'));
  });

  it('leases pin the model object chosen at acquire time', async () => {
    const { registry } = setup();
    await registry.loadPackage('models/m');
    const leases: ModelLease[] = [registry.acquire('m')!];
    await registry.loadPackage('models/m');
    leases.push(registry.acquire('m')!);
    assert.notEqual(leases[0]!.model, leases[1]!.model);
    assert.deepEqual(
      leases.map((l) => (l.model.runtime as FakeRuntime).version),
      [1, 2],
    );
    leases.forEach((l) => l.release());
    await registry.close();
  });
});
