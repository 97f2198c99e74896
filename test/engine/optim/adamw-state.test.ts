import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { decodeSafetensors, encodeSafetensors, type SafetensorsTensors } from '../../../src/engine/export/safetensors.ts';
import { AdamW } from '../../../src/engine/optim/adamw.ts';
import { adamwStateTensors, loadAdamwState } from '../../../src/engine/optim/adamw-state.ts';

/** Deterministic pseudo-random values, so failures reproduce. */
function lcg(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
}

describe('AdamW state in safetensors', () => {
  it('lays the state out as an I64 step and 1-D F32 moments under the prefix', () => {
    const opt = new AdamW({ 'blocks.0.w': new Float32Array(3), b: new Float32Array(1) });
    opt.step({ 'blocks.0.w': Float32Array.of(1, 2, 3), b: Float32Array.of(-1) }, 0.1);
    const tensors = adamwStateTensors(opt.exportState());
    assert.deepEqual(Object.keys(tensors).sort(), [
      'optimizer.m.b', 'optimizer.m.blocks.0.w', 'optimizer.step', 'optimizer.v.b', 'optimizer.v.blocks.0.w',
    ]);
    assert.deepEqual(tensors['optimizer.step'], { dtype: 'I64', shape: [], data: BigInt64Array.of(1n) });
    assert.deepEqual(tensors['optimizer.m.blocks.0.w'], { dtype: 'F32', shape: [3], data: Float32Array.of(0.1, 0.2, 0.3) });
    assert.equal(tensors['optimizer.v.b']!.dtype, 'F32');
    assert.deepEqual(tensors['optimizer.v.b']!.shape, [1]);
  });

  it('resumes bit-identically from a checkpoint holding weights and optimizer state in one file', () => {
    const rand = lcg(11);
    const make = () => ({ w: Float32Array.from({ length: 50 }, () => rand()), b: Float32Array.from({ length: 4 }, () => rand()) });
    const grads = Array.from({ length: 6 }, make);
    const params = make();
    const options = { weightDecay: 0.1, noWeightDecay: ['b'] };
    const opt = new AdamW(params, options);
    for (const g of grads.slice(0, 3)) opt.step(g, 0.02);

    const tensors: SafetensorsTensors = { ...adamwStateTensors(opt.exportState()) };
    for (const [name, p] of Object.entries(params)) tensors[name] = { dtype: 'F32', shape: [p.length], data: p };
    const file = decodeSafetensors(encodeSafetensors(tensors));

    const resumedParams = { w: file.tensors.w!.data as Float32Array, b: file.tensors.b!.data as Float32Array };
    const resumed = new AdamW(resumedParams, options);
    resumed.importState(loadAdamwState(file.tensors));
    assert.equal(resumed.stepCount, 3);

    for (const g of grads.slice(3)) {
      opt.step(g, 0.02);
      resumed.step(g, 0.02);
    }
    assert.deepEqual(resumedParams, params); // bit-identical, not merely close
    assert.deepEqual(resumed.exportState(), opt.exportState());
  });

  it('keeps a step count beyond 2^32 exact', () => {
    const state = { step: 2 ** 40 + 3, m: {}, v: {} };
    assert.deepEqual(loadAdamwState(decodeSafetensors(encodeSafetensors(adamwStateTensors(state))).tensors), state);
  });

  it('supports a custom prefix and ignores tensors outside it', () => {
    const state = { step: 2, m: { w: Float32Array.of(1) }, v: { w: Float32Array.of(2) } };
    const tensors = { ...adamwStateTensors(state, 'adam/'), w: { dtype: 'F32', shape: [1], data: Float32Array.of(9) } } as SafetensorsTensors;
    assert.deepEqual(loadAdamwState(tensors, 'adam/'), state);
  });

  it('refuses incomplete or malformed state, saying what is wrong', () => {
    const good = adamwStateTensors({ step: 1, m: { w: Float32Array.of(1, 2) }, v: { w: Float32Array.of(3, 4) } });
    const without = (key: string) => Object.fromEntries(Object.entries(good).filter(([k]) => k !== key)) as SafetensorsTensors;
    assert.throws(() => loadAdamwState(without('optimizer.step')), /no "optimizer\.step" tensor/);
    assert.throws(() => loadAdamwState(without('optimizer.v.w')), /only in m: \[w\]; only in v: \[\]/);
    assert.throws(
      () => loadAdamwState({ ...good, 'optimizer.v.w': { dtype: 'F32', shape: [3], data: Float32Array.of(1, 2, 3) } }),
      /m\.w has 2 elements but v\.w has 3/,
    );
    assert.throws(
      () => loadAdamwState({ ...good, 'optimizer.m.w': { dtype: 'F64', shape: [2], data: Float64Array.of(1, 2) } }),
      /"optimizer\.m\.w" must be a 1-D F32 tensor, got F64/,
    );
    assert.throws(() => loadAdamwState({ ...good, 'optimizer.x': { dtype: 'U8', shape: [1], data: Uint8Array.of(1) } }), /unexpected tensor "optimizer\.x"/);
    assert.throws(() => loadAdamwState({ ...good, 'optimizer.step': { dtype: 'I64', shape: [], data: BigInt64Array.of(-1n) } }), /out of range/);
    assert.throws(() => adamwStateTensors({ step: 1.5, m: {}, v: {} }), /step must be a non-negative integer/);
    // Names and lengths are then checked against the optimizer itself.
    assert.throws(() => new AdamW({ w: new Float32Array(3) }).importState(loadAdamwState(good)), /m\["w"\] must be a Float32Array of 3 elements/);
  });
});
