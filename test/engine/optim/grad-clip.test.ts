import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { clipGradNorm, globalGradNorm } from '../../../src/engine/optim/grad-clip.ts';

describe('gradient clipping', () => {
  it('computes the norm across all tensors', () => {
    // 3-4-12-84 chain: sqrt(9 + 16 + 144 + 7056) = 85
    assert.equal(globalGradNorm({ a: Float32Array.from([3, 4]), b: Float32Array.from([12]), c: Float32Array.from([84]) }), 85);
    assert.equal(globalGradNorm(new Map([['a', new Float32Array(0)]])), 0);
  });

  it('accumulates in float64: no overflow for large float32 values, no loss over many elements', () => {
    // (3·2^100)² overflows float32 (max ~3.4e38) but not float64.
    assert.equal(globalGradNorm({ a: Float32Array.from([3 * 2 ** 100, 4 * 2 ** 100]) }), 5 * 2 ** 100);
    // 2^20 copies of 2^-12: a float32 running sum would stall; exact answer is sqrt(2^20 · 2^-24) = 0.25.
    assert.equal(globalGradNorm({ a: new Float32Array(2 ** 20).fill(2 ** -12) }), 0.25);
  });

  it('scales gradients down to maxNorm and returns the pre-clip norm', () => {
    const a = Float32Array.from([3, 0]);
    const b = Float32Array.from([4]);
    const norm = clipGradNorm({ a, b }, 1);
    assert.equal(norm, 5);
    const scale = 1 / (5 + 1e-6);
    assert.deepEqual(a, Float32Array.from([3 * scale, 0]));
    assert.deepEqual(b, Float32Array.from([4 * scale]));
    assert.ok(Math.abs(globalGradNorm({ a, b }) - 1) < 1e-6);
  });

  it('leaves gradients alone when within the limit or when the norm is not finite', () => {
    const a = Float32Array.from([0.3, 0.4]);
    assert.equal(clipGradNorm({ a }, 1), globalGradNorm({ a }));
    assert.deepEqual(a, Float32Array.from([0.3, 0.4]));
    const bad = Float32Array.from([1, NaN, 100]);
    assert.ok(Number.isNaN(clipGradNorm({ bad }, 1)));
    assert.deepEqual(bad, Float32Array.from([1, NaN, 100]));
    assert.throws(() => clipGradNorm({ a }, 0), /maxNorm/);
  });
});
