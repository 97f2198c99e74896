import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalCdf, twoProportionZTest, wilsonInterval, pairedComparison } from '../../src/eval/proportion-stats.ts';

const close = (a: number, b: number, tol: number, msg?: string) => assert.ok(Math.abs(a - b) <= tol, `${msg ?? ''} ${a} vs ${b}`);

test('Wilson 95% interval matches published values', () => {
  // 8/10: the textbook example (Newcombe 1998 method 3 / statsmodels proportion_confint(method="wilson")).
  const a = wilsonInterval(8, 10);
  close(a.lower, 0.4902, 5e-4);
  close(a.upper, 0.9433, 5e-4);
  // 0/10: the interval is [0, 0.2775], not the degenerate Wald [0, 0].
  const b = wilsonInterval(0, 10);
  assert.equal(b.lower, 0);
  close(b.upper, 0.2775, 5e-4);
  // 10/10 mirrors it.
  const c = wilsonInterval(10, 10);
  close(c.lower, 0.7225, 5e-4);
  assert.equal(c.upper, 1);
  // 50/100: symmetric around 0.5, [0.4038, 0.5962].
  const d = wilsonInterval(50, 100);
  close(d.lower, 0.4038, 5e-4);
  close(d.upper, 0.5962, 5e-4);
});

test('Wilson interval with no data and bad counts', () => {
  assert.deepEqual(wilsonInterval(0, 0), { lower: 0, upper: 1 });
  assert.throws(() => wilsonInterval(3, 2));
  assert.throws(() => wilsonInterval(-1, 2));
  assert.throws(() => wilsonInterval(1.5, 2));
});

test('two-proportion z-test (pooled), hand-computed', () => {
  // 45/100 vs 30/100: pooled p = 0.375, SE = sqrt(0.375 * 0.625 * 0.02) = 0.068465, z = 0.15 / SE.
  const r = twoProportionZTest(45, 100, 30, 100);
  close(r.z, 2.19089, 1e-4);
  close(r.pValue, 0.02846, 1e-4);
  const swapped = twoProportionZTest(30, 100, 45, 100);
  close(swapped.z, -2.19089, 1e-4);
  close(swapped.pValue, r.pValue, 1e-12);
  // Identical proportions: no evidence.
  close(twoProportionZTest(20, 40, 10, 20).z, 0, 1e-12);
  assert.deepEqual(twoProportionZTest(10, 10, 5, 5), { z: 0, pValue: 1 });
  assert.throws(() => twoProportionZTest(1, 0, 1, 2));
});

test('normal CDF', () => {
  close(normalCdf(0), 0.5, 1e-7);
  close(normalCdf(1.96), 0.975, 1e-4);
  close(normalCdf(-1.645), 0.05, 1e-4);
});

test('paired comparison: discordant counts, difference, Wald interval and exact McNemar p, hand-computed', () => {
  // 1,232 cases: 22 only A right, 11 only B right, the rest agree (the shipped SFT/GRPO pair).
  const n = 1232;
  const a = Array.from({ length: n }, (_, i) => i < 22 || (i >= 33 && i < 800));
  const b = Array.from({ length: n }, (_, i) => (i >= 22 && i < 33) || (i >= 33 && i < 800));
  const r = pairedComparison(a, b);
  assert.equal(r.onlyA, 22);
  assert.equal(r.onlyB, 11);
  assert.ok(Math.abs(r.difference - -11 / 1232) < 1e-12);
  // se = sqrt(33 − 121/1232) / 1232 = 0.0046559…
  assert.ok(Math.abs(r.interval.lower - (-11 / 1232 - 1.96 * 0.00465585)) < 1e-6, String(r.interval.lower));
  assert.ok(Math.abs(r.interval.upper - (-11 / 1232 + 1.96 * 0.00465585)) < 1e-6, String(r.interval.upper));
  // 2 · Σ_{i≤11} C(33, i) / 2^33 = 0.0801433…
  assert.ok(Math.abs(r.pValue - 0.0801433) < 1e-6, String(r.pValue));
  // 5 discordant cases all one way: 2 / 32.
  assert.equal(pairedComparison([true, true, true, true, true, false], [false, false, false, false, false, false]).pValue, 0.0625);
  // No discordant case: no evidence either way.
  const same = pairedComparison([true, false], [true, false]);
  assert.deepEqual([same.difference, same.pValue, same.interval.lower, same.interval.upper], [0, 1, 0, 0]);
  assert.throws(() => pairedComparison([true], [true, false]), /1 vs 2/);
});
