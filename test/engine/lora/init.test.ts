// Initial adapters as PEFT makes them: A ~ kaiming_uniform_(a=√5) = U(±1/√fan_in), B = 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { initLoraWeights, kaimingUniformBound } from '../../../src/engine/lora/init.ts';
import { selectLoraTargets } from '../../../src/engine/lora/targets.ts';

const params = [
  { name: 'model.layers.0.mlp.down_proj.weight', shape: [64, 400] },
  { name: 'visual.patch_embed.proj.weight', shape: [32, 3, 2, 14, 14] },
];
const targets = selectLoraTargets(params, { target_modules: ['down_proj', 'patch_embed.proj'], exclude_modules: null });

test('torch kaiming_uniform_ bound sqrt(6/((1+a^2) fan_in)) is 1/sqrt(fan_in) at a = sqrt(5)', () => {
  for (const fan of [1, 64, 1176, 8960]) assert.ok(Math.abs(kaimingUniformBound(fan) - 1 / Math.sqrt(fan)) < 1e-15);
  assert.ok(Math.abs(kaimingUniformBound(100, 0) - Math.sqrt(6 / 100)) < 1e-15); // a = 0: He/ReLU bound
});

test("A is uniform within ±1/sqrt(in) with the uniform law's moments; B is exactly zero", () => {
  const w = initLoraWeights(targets, { r: 16, init_lora_weights: true }, 42);
  for (const t of targets) {
    const a = w.get(t.aName)!;
    const b = w.get(t.bName)!;
    assert.equal(a.length, 16 * t.inFeatures);
    assert.equal(b.length, t.outFeatures * 16);
    assert.ok(b.every((v) => v === 0));
    const bound = 1 / Math.sqrt(t.inFeatures);
    let max = 0;
    let sum = 0;
    let sq = 0;
    for (const v of a) {
      max = Math.max(max, Math.abs(v));
      sum += v;
      sq += v * v;
    }
    const n = a.length;
    assert.ok(max <= bound && max > 0.99 * bound, `${t.module}: max |A| ${max} vs bound ${bound}`);
    // U(-b, b): mean 0, variance b²/3; n ≥ 6400 draws keep both within a few standard errors.
    assert.ok(Math.abs(sum / n) < (5 * bound) / Math.sqrt(3 * n), `${t.module}: mean ${sum / n}`);
    assert.ok(Math.abs(sq / n / ((bound * bound) / 3) - 1) < 0.05, `${t.module}: variance ratio ${sq / n / ((bound * bound) / 3)}`);
  }
});

test('the seed fixes the adapter; another seed gives another', () => {
  const one = initLoraWeights(targets, { r: 4, init_lora_weights: true }, 7);
  const two = initLoraWeights(targets, { r: 4, init_lora_weights: true }, 7);
  const three = initLoraWeights(targets, { r: 4, init_lora_weights: true }, 8);
  const a = targets[0].aName;
  assert.deepEqual(one.get(a), two.get(a));
  assert.notDeepEqual(one.get(a), three.get(a));
});

test('"gaussian" draws A with std 1/r; false gives B the nn.Linear bound 1/sqrt(r)', () => {
  const r = 8;
  const g = initLoraWeights(targets, { r, init_lora_weights: 'gaussian' }, 3);
  const a = g.get(targets[0].aName)!;
  const std = Math.sqrt(a.reduce((s, v) => s + v * v, 0) / a.length);
  assert.ok(Math.abs(std * r - 1) < 0.05, `std ${std}`);
  assert.ok(g.get(targets[0].bName)!.every((v) => v === 0));
  const f = initLoraWeights(targets, { r, init_lora_weights: false }, 3);
  const b = f.get(targets[0].bName)!;
  const maxB = Math.max(...b.map(Math.abs));
  assert.ok(maxB > 0.9 / Math.sqrt(r) && maxB <= 1 / Math.sqrt(r));
});
