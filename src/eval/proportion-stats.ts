// Confidence intervals and tests for accuracies (proportions), so eval reports say how much of a
// difference between two checkpoints is noise. VQA-RAD's test split has only ~450 questions.

export interface Interval {
  lower: number;
  upper: number;
}

/**
 * Wilson score interval for a binomial proportion. Preferred over the normal (Wald) interval because it
 * stays inside [0, 1] and keeps its coverage near 0% and 100% accuracy. With n = 0 there is no
 * information, and the interval is all of [0, 1].
 */
export function wilsonInterval(successes: number, n: number, z = 1.96): Interval {
  checkCounts(successes, n);
  if (n === 0) return { lower: 0, upper: 1 };
  const p = successes / n;
  const z2 = z * z;
  const denom = 1 + z2 / n;
  const centre = (p + z2 / (2 * n)) / denom;
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / denom;
  return { lower: Math.max(0, centre - half), upper: Math.min(1, centre + half) };
}

export interface ZTestResult {
  z: number;
  /** Two-sided. */
  pValue: number;
}

/**
 * Two-sided two-proportion z-test with the pooled standard error (H0: p1 = p2). When both samples are all
 * successes or all failures the pooled SE is 0 and there is no evidence of a difference: z = 0, p = 1.
 */
export function twoProportionZTest(s1: number, n1: number, s2: number, n2: number): ZTestResult {
  checkCounts(s1, n1);
  checkCounts(s2, n2);
  if (n1 === 0 || n2 === 0) throw new Error('twoProportionZTest: both samples must be non-empty');
  const pooled = (s1 + s2) / (n1 + n2);
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2));
  if (se === 0) return { z: 0, pValue: 1 };
  const z = (s1 / n1 - s2 / n2) / se;
  return { z, pValue: Math.min(1, erfc(Math.abs(z) / Math.SQRT2)) };
}

/** Standard normal CDF. */
export function normalCdf(x: number): number {
  return 0.5 * erfc(-x / Math.SQRT2);
}

/**
 * Complementary error function, Chebyshev fit (Numerical Recipes `erfcc`), fractional error < 1.2e-7
 * everywhere — ample for p-values.
 */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 +
        t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

function checkCounts(successes: number, n: number): void {
  if (!(Number.isInteger(successes) && Number.isInteger(n) && successes >= 0 && n >= 0 && successes <= n)) {
    throw new Error(`invalid counts: ${successes}/${n}`);
  }
}
