// Learning-rate schedule: linear warmup from 0 to the peak, then a half cosine down to peak·minRatio.
//
// `step` counts optimizer updates: lr(0) = 0, lr(warmupSteps) = peak, lr(totalSteps) = peak·minRatio,
// and steps past the end stay at the minimum. Call it with t = 1..totalSteps for the t-th update, so
// the first update already moves (peak / warmupSteps) and the last one uses the minimum.

export interface WarmupCosineOptions {
  peakLr: number;
  warmupSteps: number;
  totalSteps: number;
  /** Final learning rate as a fraction of the peak, in [0, 1]. */
  minRatio: number;
}

export type LrSchedule = (step: number) => number;

export function warmupCosineSchedule(options: WarmupCosineOptions): LrSchedule {
  const { peakLr, warmupSteps, totalSteps, minRatio } = options;
  if (!Number.isFinite(peakLr) || peakLr < 0) throw new RangeError(`peakLr must be finite and >= 0, got ${peakLr}`);
  if (!Number.isSafeInteger(warmupSteps) || warmupSteps < 0) {
    throw new RangeError(`warmupSteps must be a non-negative integer, got ${warmupSteps}`);
  }
  if (!Number.isSafeInteger(totalSteps) || totalSteps < warmupSteps) {
    throw new RangeError(`totalSteps must be an integer >= warmupSteps (${warmupSteps}), got ${totalSteps}`);
  }
  if (!(minRatio >= 0 && minRatio <= 1)) throw new RangeError(`minRatio must be in [0, 1], got ${minRatio}`);
  const decaySteps = totalSteps - warmupSteps;

  return (step: number): number => {
    if (!Number.isFinite(step) || step < 0) throw new RangeError(`schedule step must be finite and >= 0, got ${step}`);
    if (step < warmupSteps) return (peakLr * step) / warmupSteps;
    if (step >= totalSteps) return peakLr * minRatio; // also covers decaySteps === 0
    const progress = (step - warmupSteps) / decaySteps;
    return peakLr * (minRatio + (1 - minRatio) * 0.5 * (1 + Math.cos(Math.PI * progress)));
  };
}
