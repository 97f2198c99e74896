// GET /admin/ab/report: per variant, traffic, latency and accuracy from feedback with a 95% Wilson
// interval, and a two-proportion z-test between the two largest arms. Pure: stats + table in, the
// openapi `AbReport` out.
//
// Which two arms are compared: among the table-routed variants that have judged feedback on both
// sides, the two with the most requests (ties: more judged feedback, then name). "override" traffic
// (requests that named their model) is reported but never compared: it is self-selected, not randomised.
import { twoProportionZTest, wilsonInterval } from '../eval/proportion-stats.ts';
import { OVERRIDE_VARIANT, type AbTable } from '../routing/ab-table.ts';
import type { VariantStats } from './feedback-store.ts';

export interface AbVariantReport {
  variant: string;
  models: string[];
  requests: number;
  latency_ms: { p50: number | null; p95: number | null };
  feedback: number;
  judged: number;
  correct: number;
  accuracy: number | null;
  accuracy_ci95: { low: number; high: number } | null;
}

export interface AbComparison {
  variant_a: string;
  variant_b: string;
  accuracy_a: number;
  accuracy_b: number;
  /** accuracy_a − accuracy_b. */
  difference: number;
  z: number;
  p_value: number;
  significant_at_0_05: boolean;
}

export interface AbReport {
  generated_at: string;
  table_version: number;
  variants: AbVariantReport[];
  comparison: AbComparison | null;
  comparison_note?: string;
}

/**
 * Variants of the current table come first, in table order (with zeros if they have no traffic yet);
 * then variants only in the history (earlier tables, "override"), most requests first.
 */
export function buildAbReport(stats: readonly VariantStats[], table: AbTable, now: Date = new Date()): AbReport {
  const byName = new Map(stats.map((s) => [s.variant, s]));
  const rows: AbVariantReport[] = [];
  for (const v of table.variants) {
    rows.push(variantReport(byName.get(v.name) ?? emptyStats(v.name, v.model)));
    byName.delete(v.name);
  }
  const history = [...byName.values()].sort((a, b) => b.requests - a.requests || a.variant.localeCompare(b.variant));
  rows.push(...history.map(variantReport));
  const { comparison, note } = compare(rows);
  return {
    generated_at: now.toISOString(),
    table_version: table.version,
    variants: rows,
    comparison,
    ...(note !== undefined ? { comparison_note: note } : {}),
  };
}

function variantReport(s: VariantStats): AbVariantReport {
  const ci = s.judged > 0 ? wilsonInterval(s.correct, s.judged) : null;
  return {
    variant: s.variant,
    models: s.models,
    requests: s.requests,
    latency_ms: { p50: s.latencyP50Ms, p95: s.latencyP95Ms },
    feedback: s.feedback,
    judged: s.judged,
    correct: s.correct,
    accuracy: s.judged > 0 ? s.correct / s.judged : null,
    accuracy_ci95: ci === null ? null : { low: ci.lower, high: ci.upper },
  };
}

function compare(rows: readonly AbVariantReport[]): { comparison: AbComparison | null; note?: string } {
  const candidates = rows
    .filter((r) => r.variant !== OVERRIDE_VARIANT && r.judged > 0)
    .sort((a, b) => b.requests - a.requests || b.judged - a.judged || a.variant.localeCompare(b.variant));
  if (candidates.length < 2) {
    return {
      comparison: null,
      note: `a comparison needs two variants with correct/incorrect feedback; ${candidates.length} ha${candidates.length === 1 ? 's' : 've'} any`,
    };
  }
  const [a, b] = candidates as [AbVariantReport, AbVariantReport];
  const test = twoProportionZTest(a.correct, a.judged, b.correct, b.judged);
  const accuracyA = a.correct / a.judged;
  const accuracyB = b.correct / b.judged;
  return {
    comparison: {
      variant_a: a.variant,
      variant_b: b.variant,
      accuracy_a: accuracyA,
      accuracy_b: accuracyB,
      difference: accuracyA - accuracyB,
      z: test.z,
      p_value: test.pValue,
      significant_at_0_05: test.pValue < 0.05,
    },
  };
}

function emptyStats(variant: string, model: string): VariantStats {
  return { variant, models: [model], requests: 0, latencyP50Ms: null, latencyP95Ms: null, feedback: 0, judged: 0, correct: 0 };
}
