import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { warmupCosineSchedule } from '../../../src/engine/optim/lr-schedule.ts';

const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} vs ${b}`);

describe('warmup + cosine schedule', () => {
  const lr = warmupCosineSchedule({ peakLr: 1e-3, warmupSteps: 10, totalSteps: 110, minRatio: 0.1 });

  it('warms up linearly from 0 to the peak', () => {
    assert.equal(lr(0), 0);
    close(lr(1), 1e-4);
    close(lr(5), 5e-4);
    close(lr(10), 1e-3);
  });

  it('decays along a half cosine to the minimum and stays there', () => {
    close(lr(60), 1e-3 * (0.1 + 0.9 * 0.5)); // halfway through the decay: cos(π/2) = 0
    close(lr(35), 1e-3 * (0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI / 4))));
    close(lr(110), 1e-4);
    close(lr(500), 1e-4);
    for (let s = 10; s < 110; s++) assert.ok(lr(s + 1) < lr(s), `not decreasing at ${s}`);
  });

  it('handles no warmup and a zero minimum', () => {
    const noWarmup = warmupCosineSchedule({ peakLr: 2, warmupSteps: 0, totalSteps: 4, minRatio: 0 });
    assert.deepEqual(
      [0, 1, 2, 3, 4].map(noWarmup).map((x) => Math.round(x * 1e12) / 1e12),
      [2, 1.707106781187, 1, 0.292893218813, 0],
    );
  });

  it('rejects inconsistent options and bad steps', () => {
    assert.throws(() => warmupCosineSchedule({ peakLr: 1, warmupSteps: 10, totalSteps: 5, minRatio: 0 }), /totalSteps/);
    assert.throws(() => warmupCosineSchedule({ peakLr: 1, warmupSteps: 1, totalSteps: 5, minRatio: 1.5 }), /minRatio/);
    assert.throws(() => warmupCosineSchedule({ peakLr: -1, warmupSteps: 1, totalSteps: 5, minRatio: 0 }), /peakLr/);
    assert.throws(() => lr(-1), /step/);
  });
});
