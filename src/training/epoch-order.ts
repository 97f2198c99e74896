// The order in which a trainer visits its examples, epoch by epoch.
import { rng } from '../engine/random.ts';

/** Seeded Fisher–Yates: the order of epoch e depends only on (seed, e), so a resumed run matches. */
export function epochOrder(n: number, seed: number, epoch: number): number[] {
  const r = rng((seed * 7919 + epoch * 104729) >>> 0);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}
