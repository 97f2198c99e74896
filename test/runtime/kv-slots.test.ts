// The JS-side KV cache: positions land in their slots of every [B, H, cap, Dh] buffer, growth keeps
// what was written, and the step bias opens exactly the written, non-padding slots.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MASKED } from '../../src/engine/model/serving-io.ts';
import { KvSlots } from '../../src/runtime/kv-slots.ts';

const B = 2;
const H = 3;
const Dh = 2;
/** [B, H, S, Dh] whose value at (b, h, s, d) encodes (b, h, first + s, d), and buffer i. */
const fresh = (i: number, first: number, S: number) =>
  Float32Array.from({ length: B * H * S * Dh }, (_, n) => {
    const d = n % Dh;
    const s = Math.floor(n / Dh) % S;
    const bh = Math.floor(n / (Dh * S));
    return 10000 * i + 1000 * bh + 10 * (first + s) + d + 1;
  });

test('positions keep their slots across growth; unwritten slots and padding stay masked', () => {
  const kv = new KvSlots({ batch: B, heads: H, headDim: Dh, buffers: 2, maxSlots: 9, chunk: 2 });
  kv.maskForever(1, 1); // row 1's slot 1 is left padding
  kv.append([fresh(0, 0, 3), fresh(1, 0, 3)], 3);
  assert.equal(kv.cap, 5);
  for (let slot = 3; slot < 9; slot++) {
    kv.append([fresh(0, slot, 1), fresh(1, slot, 1)], 1);
    assert.equal(kv.length, slot + 1);
    assert.ok(kv.cap >= kv.length && kv.cap <= 9);
    const cap: number = kv.cap;
    for (let i = 0; i < 2; i++) {
      const past = kv.past(i);
      assert.deepEqual(past.dims, [B, H, cap, Dh]);
      const data = past.data as Float32Array;
      for (let bh = 0; bh < B * H; bh++) {
        for (let s = 0; s <= slot; s++) {
          for (let d = 0; d < Dh; d++) assert.equal(data[(bh * cap + s) * Dh + d], 10000 * i + 1000 * bh + 10 * s + d + 1);
        }
      }
    }
    const bias = kv.stepBias();
    assert.deepEqual(bias.dims, [B, 1, 1, cap + 1]);
    const bd = bias.data as Float32Array;
    for (let b = 0; b < B; b++) {
      for (let k = 0; k <= cap; k++) {
        const open = k === cap || (k <= slot && !(b === 1 && k === 1));
        assert.equal(bd[b * (cap + 1) + k], open ? 0 : MASKED, `row ${b} slot ${k} after ${slot}`);
      }
    }
  }
  assert.equal(kv.cap, 9);
  assert.throws(() => kv.append([fresh(0, 9, 1), fresh(1, 9, 1)], 1), /exceed/);
});

test('a buffer of the wrong size is refused', () => {
  const kv = new KvSlots({ batch: B, heads: H, headDim: Dh, buffers: 2, maxSlots: 9, chunk: 2 });
  assert.throws(() => kv.append([fresh(0, 0, 3), fresh(1, 0, 2)], 3), /buffer 1/);
  assert.throws(() => kv.append([fresh(0, 0, 3)], 3), /2 expected/);
});
