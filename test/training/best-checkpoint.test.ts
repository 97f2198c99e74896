// The best-on-validation weights survive a restart and are replaced only by a strictly better score.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BestCheckpoint } from '../../src/training/best-checkpoint.ts';
import type { TrainerState } from '../../src/training/checkpoint.ts';
import { presetConfig } from '../../src/engine/model/config.ts';

const state = (step: number): TrainerState => ({
  method: 'grpo',
  step,
  totalSteps: 10,
  cursor: {},
  seed: 1,
  modelConfig: presetConfig('tiny', 64),
  trainerConfig: {},
  createdAt: '2026-01-01T00:00:00Z',
});
const weights = (v: number) => new Map([['w', new Float32Array([v, v + 1])]]);

test('keeps the strictly best score, saved copies, and finds it again after a restart', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'best-'));
  try {
    assert.equal((await BestCheckpoint.open(dir)).best, null);
    const b = await BestCheckpoint.open(dir);
    const live = weights(1);
    assert.equal(await b.consider(state(2), 0.5, live), true);
    live.get('w')![0] = 99; // training goes on in place: the kept copy must not change
    assert.equal(await b.consider(state(4), 0.4, weights(2)), false);
    assert.equal(await b.consider(state(6), 0.5, weights(3)), false, 'a tie keeps the earlier step');
    assert.equal(await b.consider(state(8), Number.NaN, weights(4)), false);
    assert.equal(b.best?.step, 2);
    assert.deepEqual([...b.best!.weights.get('w')!], [1, 2]);

    const again = await BestCheckpoint.open(dir);
    assert.equal(again.best?.step, 2);
    assert.equal(again.best?.score, 0.5);
    assert.deepEqual([...again.best!.weights.get('w')!], [1, 2]);
    assert.equal(await again.consider(state(10), 0.6, weights(5)), true);
    assert.equal((await BestCheckpoint.open(dir)).best?.step, 10);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
