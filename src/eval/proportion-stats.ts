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

export interface PairedComparison {
  n: number;
  /** Cases only the first model got right, and only the second. */
  onlyA: number;
  onlyB: number;
  /** Accuracy of B minus accuracy of A. */
  difference: number;
  /** 95% Wald interval of the paired difference (clamped to [−1, 1]). */
  interval: Interval;
  /** Exact two-sided McNemar test: under H0 each discordant case is a fair coin. */
  pValue: number;
}

/**
 * Two models scored on the SAME cases. Pairing uses what the unpaired z-test throws away: cases
 * both get right or both get wrong say nothing about which is better, so only the discordant ones
 * count, and the test is far more sensitive than comparing two accuracies as independent samples.
 */
export function pairedComparison(correctA: readonly boolean[], correctB: readonly boolean[]): PairedComparison {
  if (correctA.length !== correctB.length) throw new Error(`pairedComparison: ${correctA.length} vs ${correctB.length} cases`);
  const n = correctA.length;
  if (n === 0) throw new Error('pairedComparison: no cases');
  let onlyA = 0;
  let onlyB = 0;
  correctA.forEach((a, i) => {
    if (a && !correctB[i]) onlyA++;
    else if (!a && correctB[i]) onlyB++;
  });
  const difference = (onlyB - onlyA) / n;
  const se = Math.sqrt(Math.max(0, onlyA + onlyB - (onlyB - onlyA) ** 2 / n)) / n;
  const interval = { lower: Math.max(-1, difference - 1.96 * se), upper: Math.min(1, difference + 1.96 * se) };
  return { n, onlyA, onlyB, difference, interval, pValue: mcNemarExact(onlyA, onlyB) };
}

/** Two-sided exact binomial test of min(b, c) among b + c discordant cases at p = ½. */
function mcNemarExact(b: number, c: number): number {
  const m = b + c;
  if (m === 0) return 1;
  const k = Math.min(b, c);
  // Σ_{i ≤ k} C(m, i) / 2^m, in log space so hundreds of discordant cases do not overflow.
  let logTerm = -m * Math.LN2; // log(C(m, 0) / 2^m)
  let tail = Math.exp(logTerm);
  for (let i = 1; i <= k; i++) {
    logTerm += Math.log((m - i + 1) / i);
    tail += Math.exp(logTerm);
  }
  return Math.min(1, 2 * tail);
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
      -z * z -
        1.26551223 +
        t *
          (1.00002368 +
            t *
              (0.37409196 +
                t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

function checkCounts(successes: number, n: number): void {
  if (!(Number.isInteger(successes) && Number.isInteger(n) && successes >= 0 && n >= 0 && successes <= n)) {
    throw new Error(`invalid counts: ${successes}/${n}`);
  }
}
