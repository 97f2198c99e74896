import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildAbReport } from '../../src/feedback/ab-report.ts';
import type { VariantStats } from '../../src/feedback/feedback-store.ts';
import { nextTable, type AbTable } from '../../src/routing/ab-table.ts';

const NOW = new Date('2025-05-01T00:00:00Z');

function table(variants: [name: string, model: string, weight: number][]): AbTable {
  return nextTable(
    null,
    { variants: variants.map(([name, model, weight]) => ({ name, model, weight })), stickyHeader: 'X-Client-Id' },
    { origin: 'admin', now: NOW },
  );
}

function stats(variant: string, requests: number, judged: number, correct: number, extra: Partial<VariantStats> = {}): VariantStats {
  return { variant, models: [variant], requests, latencyP50Ms: 100, latencyP95Ms: 250, feedback: judged, judged, correct, ...extra };
}

test('per-variant rows with accuracy and a 95% Wilson interval (hand-checked values)', () => {
  const report = buildAbReport(
    [stats('grpo', 200, 100, 80), stats('sft', 180, 100, 60)],
    table([
      ['grpo', 'grpo', 1],
      ['sft', 'sft', 1],
    ]),
    NOW,
  );
  assert.equal(report.generated_at, '2025-05-01T00:00:00.000Z');
  assert.equal(report.table_version, 1);
  const grpo = report.variants[0]!;
  assert.equal(grpo.variant, 'grpo');
  assert.equal(grpo.accuracy, 0.8);
  // Wilson 80/100: centre 0.7846, half-width 0.0778.
  assert.ok(Math.abs(grpo.accuracy_ci95!.low - 0.7112) < 5e-4, String(grpo.accuracy_ci95!.low));
  assert.ok(Math.abs(grpo.accuracy_ci95!.high - 0.8666) < 5e-4, String(grpo.accuracy_ci95!.high));
  assert.deepEqual(grpo.latency_ms, { p50: 100, p95: 250 });
  // z = 0.2 / sqrt(0.7 · 0.3 · (1/100 + 1/100)) = 3.086, two-sided p = 0.00203.
  const c = report.comparison!;
  assert.equal(c.variant_a, 'grpo');
  assert.equal(c.variant_b, 'sft');
  assert.ok(Math.abs(c.difference - 0.2) < 1e-12);
  assert.ok(Math.abs(c.z - 3.086) < 1e-3, String(c.z));
  assert.ok(Math.abs(c.p_value - 0.00203) < 2e-5, String(c.p_value));
  assert.equal(c.significant_at_0_05, true);
  assert.equal(report.comparison_note, undefined);
});

test('table variants come first (zeros when they have no traffic), then history by requests', () => {
  const report = buildAbReport(
    [stats('old-arm', 5, 0, 0), stats('override', 40, 2, 1), stats('sft', 10, 0, 0)],
    table([
      ['grpo', 'clinvqa-grpo', 1],
      ['sft', 'clinvqa-sft', 1],
    ]),
    NOW,
  );
  assert.deepEqual(
    report.variants.map((v) => v.variant),
    ['grpo', 'sft', 'override', 'old-arm'],
  );
  assert.deepEqual(report.variants[0], {
    variant: 'grpo',
    models: ['clinvqa-grpo'],
    requests: 0,
    latency_ms: { p50: null, p95: null },
    feedback: 0,
    judged: 0,
    correct: 0,
    accuracy: null,
    accuracy_ci95: null,
  });
  assert.equal(report.variants[1]!.accuracy, null);
  assert.equal(report.comparison, null);
  assert.match(report.comparison_note!, /0 have any/); // override's feedback does not count
});

test('the comparison takes the two largest arms with judged feedback and never "override"', () => {
  const report = buildAbReport(
    [stats('override', 1000, 500, 450), stats('a', 300, 20, 15), stats('b', 500, 0, 0), stats('c', 200, 30, 12), stats('d', 100, 50, 40)],
    table([
      ['a', 'a', 1],
      ['b', 'b', 1],
      ['c', 'c', 1],
      ['d', 'd', 1],
    ]),
    NOW,
  );
  assert.equal(report.comparison!.variant_a, 'a');
  assert.equal(report.comparison!.variant_b, 'c');
  // 15/20 vs 12/30: pooled 0.54, se = sqrt(0.54 · 0.46 · (1/20 + 1/30)) = 0.14387, z = 0.35 / se = 2.4327.
  assert.ok(Math.abs(report.comparison!.z - 2.4327) < 1e-3, String(report.comparison!.z));
  assert.ok(Math.abs(report.comparison!.p_value - 0.01499) < 2e-4, String(report.comparison!.p_value));
  assert.equal(report.comparison!.significant_at_0_05, true);
});

test('identical all-correct arms: z = 0, p = 1, not significant', () => {
  const report = buildAbReport(
    [stats('a', 10, 10, 10), stats('b', 10, 10, 10)],
    table([
      ['a', 'a', 1],
      ['b', 'b', 1],
    ]),
    NOW,
  );
  assert.deepEqual({ z: report.comparison!.z, p: report.comparison!.p_value, sig: report.comparison!.significant_at_0_05 }, { z: 0, p: 1, sig: false });
  assert.deepEqual(report.variants[0]!.accuracy_ci95!.high, 1);
});
