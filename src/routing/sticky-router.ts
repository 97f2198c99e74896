// Chooses the A/B variant for one request. A client that sends its id (in the table's sticky header)
// is placed by a hash of (client id, table version) on [0, 1) and gets the variant whose slice of the
// cumulative weights holds that point: the same variant on every request, on every replica and after
// restarts, until the table changes — a new version re-draws everyone, on purpose, so no client stays
// pinned to an arm by an old table. Without a client id the point is random, i.e. each request is drawn
// by weight.
//
// A request that names its model (`model` in /v1/vqa or chat) does not come here: the caller serves
// that model and labels the response with OVERRIDE_VARIANT ("override"), so the arms' data stays
// clean of self-selected traffic.
import { createHash } from 'node:crypto';
import type { AbTable, AbVariant } from './ab-table.ts';

export interface PickedVariant {
  readonly variant: AbVariant;
  /** The version of the table it was drawn from (record it with the response). */
  readonly tableVersion: number;
  /** True when a client id decided the draw. */
  readonly sticky: boolean;
}

/**
 * The variant for a request, or null when no variant with weight > 0 has an available model (the
 * caller answers 503 model_unavailable).
 *
 * Availability: the point is first placed among all weighted variants; if that variant's model is
 * available it is the answer, so clients of the healthy arms keep their variant while one model is
 * briefly away (e.g. being reloaded). Only clients of the missing arm are re-placed, with the same
 * point, among the available variants.
 */
export function pickVariant(
  table: AbTable,
  clientId: string | undefined,
  isAvailable: (model: string) => boolean,
  random: () => number = Math.random,
): PickedVariant | null {
  const sticky = clientId !== undefined && clientId !== '';
  const point = sticky ? stickyPoint(clientId, table.version) : random();
  const weighted = table.variants.filter((v) => v.weight > 0);
  const first = atPoint(weighted, point);
  if (first === undefined) return null;
  if (isAvailable(first.model)) return { variant: first, tableVersion: table.version, sticky };
  const fallback = atPoint(
    weighted.filter((v) => isAvailable(v.model)),
    point,
  );
  return fallback === undefined ? null : { variant: fallback, tableVersion: table.version, sticky };
}

/**
 * Where a client falls on [0, 1) under a table version: the first 48 bits of
 * SHA-256("clinvqa-ab" ‖ version ‖ client id). Uniform, and independent across versions.
 */
export function stickyPoint(clientId: string, tableVersion: number): number {
  const digest = createHash('sha256').update(`clinvqa-ab\0${tableVersion}\0${clientId}`, 'utf8').digest();
  return digest.readUIntBE(0, 6) / 2 ** 48;
}

/** The variant whose slice of the cumulative weights holds `point` ∈ [0, 1). */
function atPoint(variants: readonly AbVariant[], point: number): AbVariant | undefined {
  const total = variants.reduce((sum, v) => sum + v.weight, 0);
  if (total <= 0) return undefined;
  const target = point * total;
  let cumulative = 0;
  for (const v of variants) {
    cumulative += v.weight;
    if (target < cumulative) return v;
  }
  // Rounding can leave target a hair above the summed weights; the point then belongs to the last slice.
  return variants[variants.length - 1];
}
