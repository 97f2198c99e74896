// The GRPO clipped surrogate, its aggregation variants and its analytic gradient with respect to the
// current policy's per-token log-probs. The gradient is the upstream gradient fed into the ONNX training
// graph, which back-propagates it to weight gradients; the loss value and metrics are for logging.
//
// Per completion token t of sequence i (TRL's GRPOTrainer._compute_loss):
//   ratio  = exp(logp_new - logp_old)
//   pg     = -min(ratio * A_i, clip(ratio, 1 - eps_low, 1 + eps_high) * A_i)
//   k3     = exp(logp_ref - logp_new) - (logp_ref - logp_new) - 1          (Schulman's KL estimator)
//   l_it   = pg + beta * k3
// Aggregation over masked tokens, N sequences:
//   'grpo'    : (1/N) * sum_i (1/|o_i|) * sum_t l_it        |o_i| clamped to >= 1, as TRL
//   'dr_grpo' : sum_it l_it / (N * max_completion_length)   (no 1/|o_i| length bias, Dr. GRPO)
//   'dapo'    : sum_it l_it / (tokens in batch)             (token-level mean, DAPO)
//
// Gradient. d pg / d logp_new = -A_i * ratio, except where min() selected the clipped branch and the clamp
// is active — ratio < 1 - eps_low with A_i < 0, or ratio > 1 + eps_high with A_i > 0 ("region clipped") —
// where it is 0. d k3 / d logp_new = 1 - exp(logp_ref - logp_new). Each is multiplied by the token's
// aggregation weight (1/(N|o_i|), 1/(N L) or 1/T). Masked tokens get exactly 0.
//
// logp_old omitted means num_iterations = 1: the rollout policy IS the current policy, so ratio = 1 in value
// but logp_old is a constant (TRL's `per_token_logps.detach()`), and the gradient is -A_i * weight.

export type LossType = 'grpo' | 'dr_grpo' | 'dapo';

export interface GrpoLossInputs {
  numSequences: number;
  /** Padded completion length T; every per-token array is row-major [numSequences x seqLen]. */
  seqLen: number;
  logpNew: ArrayLike<number>;
  /** Rollout policy log-probs; omit when num_iterations = 1 (then treated as a constant copy of logpNew). */
  logpOld?: ArrayLike<number>;
  /** Reference policy log-probs; required when beta != 0, optional otherwise (then only for the KL metric). */
  logpRef?: ArrayLike<number>;
  /** 1 for completion tokens, 0 for padding (and anything after EOS). */
  mask: ArrayLike<number>;
  /** One advantage per sequence. */
  advantages: ArrayLike<number>;
  /** Per sequence: did the completion end with EOS (rather than hit max_completion_length)? */
  terminated?: readonly boolean[];
  /** Per-token entropy of the current policy (the training graph's second output); only for the metric. */
  entropy?: ArrayLike<number>;
}

export interface GrpoLossConfig {
  lossType: LossType;
  /** Default 0.2 (TRL `epsilon`). */
  epsilonLow?: number;
  /** Default epsilonLow (TRL `epsilon_high`; DAPO uses 0.28). */
  epsilonHigh?: number;
  /** KL coefficient. Default 0 (TRL's current default). */
  beta?: number;
  /**
   * The configured max_completion_length; required for 'dr_grpo' (its constant denominator). Not defaulted
   * to seqLen: batches padded to their longest completion, or laid out with the prompt, would silently
   * change the loss scale from step to step.
   */
  maxCompletionLength?: number;
  /** Zero the mask of completions that did not terminate (needs `terminated`). Default false. */
  maskTruncatedCompletions?: boolean;
  /**
   * 'dapo' denominator. Default: masked tokens in this batch. Under gradient accumulation pass the token
   * count of the whole generation batch (TRL's num_items_in_batch / num_processes) so micro-batches add up.
   */
  dapoTokenNormalizer?: number;
}

/** The loss settings of a GRPO run configuration (TRL names) in the loss's own terms. */
export function grpoLossConfigOf(cfg: {
  loss_type: LossType;
  epsilon: number;
  epsilon_high?: number | null;
  beta: number;
  max_completion_length: number;
  mask_truncated_completions: boolean;
}): GrpoLossConfig {
  return {
    lossType: cfg.loss_type,
    epsilonLow: cfg.epsilon,
    epsilonHigh: cfg.epsilon_high ?? cfg.epsilon,
    beta: cfg.beta,
    maxCompletionLength: cfg.max_completion_length,
    maskTruncatedCompletions: cfg.mask_truncated_completions,
  };
}

export interface GrpoLossMetrics {
  /** Masked mean of k3; null when no logpRef was given. */
  meanKl: number | null;
  /** Masked fraction of tokens with ratio < 1 - eps_low and A < 0 (TRL clip_ratio/low_mean). */
  lowClipFraction: number;
  /** Masked fraction of tokens with ratio > 1 + eps_high and A > 0 (TRL clip_ratio/high_mean). */
  highClipFraction: number;
  /** Either of the above (TRL clip_ratio/region_mean). */
  regionClipFraction: number;
  meanRatio: number;
  /** Masked mean of the given per-token entropy; null when none was given. */
  meanEntropy: number | null;
  /** Completion tokens that took part (after truncation masking). */
  numTokens: number;
  /** Sequences dropped by maskTruncatedCompletions. */
  numMaskedTruncated: number;
}

export interface GrpoLossResult {
  loss: number;
  /** dLoss/dlogp_new, same layout as logpNew, 0 on masked tokens. */
  grad: Float32Array;
  metrics: GrpoLossMetrics;
}

function checkLength(name: string, arr: ArrayLike<number> | readonly boolean[] | undefined, expected: number): void {
  if (arr !== undefined && arr.length !== expected) throw new Error(`grpoLoss: ${name} has length ${arr.length}, expected ${expected}`);
}

/** The effective mask: input mask, with truncated completions zeroed when requested. */
function effectiveMask(inputs: GrpoLossInputs, maskTruncated: boolean): Float64Array {
  const { numSequences: n, seqLen: t, mask, terminated } = inputs;
  if (maskTruncated && terminated === undefined) throw new Error('grpoLoss: maskTruncatedCompletions needs `terminated`');
  const out = new Float64Array(n * t);
  for (let i = 0; i < n; i++) {
    const keep = !maskTruncated || terminated![i]!;
    for (let j = 0; j < t; j++) {
      const m = mask[i * t + j]!;
      if (m !== 0 && m !== 1) throw new Error(`grpoLoss: mask must be 0/1, got ${m} at ${i * t + j}`);
      out[i * t + j] = keep ? m : 0;
    }
  }
  return out;
}

/** Aggregation weight of every token, per loss_type (0 where masked). */
function tokenWeights(mask: Float64Array, n: number, t: number, config: GrpoLossConfig): Float64Array {
  const w = new Float64Array(n * t);
  let totalTokens = 0;
  for (let k = 0; k < mask.length; k++) totalTokens += mask[k]!;
  for (let i = 0; i < n; i++) {
    let seqTokens = 0;
    for (let j = 0; j < t; j++) seqTokens += mask[i * t + j]!;
    let perToken: number;
    switch (config.lossType) {
      case 'grpo':
        perToken = 1 / (n * Math.max(seqTokens, 1));
        break;
      case 'dr_grpo': {
        const maxLen = config.maxCompletionLength;
        if (maxLen === undefined) throw new Error("grpoLoss: lossType 'dr_grpo' needs maxCompletionLength");
        if (!(maxLen > 0)) throw new Error(`grpoLoss: maxCompletionLength must be > 0, got ${maxLen}`);
        perToken = 1 / (n * maxLen);
        break;
      }
      case 'dapo': {
        const normalizer = config.dapoTokenNormalizer ?? Math.max(totalTokens, 1);
        if (!(normalizer > 0)) throw new Error(`grpoLoss: dapoTokenNormalizer must be > 0, got ${normalizer}`);
        perToken = 1 / normalizer;
        break;
      }
      default:
        throw new Error(`grpoLoss: unknown lossType ${String((config as { lossType: unknown }).lossType)}`);
    }
    for (let j = 0; j < t; j++) w[i * t + j] = mask[i * t + j]! * perToken;
  }
  return w;
}

export function grpoLoss(inputs: GrpoLossInputs, config: GrpoLossConfig): GrpoLossResult {
  const { numSequences: n, seqLen: t, logpNew, logpOld, logpRef, advantages } = inputs;
  const epsLow = config.epsilonLow ?? 0.2;
  const epsHigh = config.epsilonHigh ?? epsLow;
  const beta = config.beta ?? 0;
  if (!(Number.isInteger(n) && n > 0 && Number.isInteger(t) && t > 0)) throw new Error(`grpoLoss: bad shape ${n}x${t}`);
  checkLength('logpNew', logpNew, n * t);
  checkLength('logpOld', logpOld, n * t);
  checkLength('logpRef', logpRef, n * t);
  checkLength('mask', inputs.mask, n * t);
  checkLength('advantages', advantages, n);
  checkLength('terminated', inputs.terminated, n);
  checkLength('entropy', inputs.entropy, n * t);
  if (!(epsLow >= 0 && epsLow < 1 && epsHigh >= 0)) throw new Error(`grpoLoss: bad epsilon (low ${epsLow}, high ${epsHigh})`);
  if (beta !== 0 && logpRef === undefined) throw new Error('grpoLoss: beta != 0 needs logpRef');

  const maskTruncated = config.maskTruncatedCompletions ?? false;
  const mask = effectiveMask(inputs, maskTruncated);
  const numMaskedTruncated = maskTruncated ? inputs.terminated!.filter((done) => !done).length : 0;
  const weights = tokenWeights(mask, n, t, config);
  const grad = new Float32Array(n * t);

  let loss = 0;
  let numTokens = 0;
  let klSum = 0;
  let ratioSum = 0;
  let lowClipped = 0;
  let highClipped = 0;
  let entropySum = 0;
  for (let i = 0; i < n; i++) {
    const a = advantages[i]!;
    for (let j = 0; j < t; j++) {
      const k = i * t + j;
      if (mask[k] === 0) continue;
      const lpNew = logpNew[k]!;
      const ratio = logpOld === undefined ? 1 : Math.exp(lpNew - logpOld[k]!);
      const clipped = Math.min(Math.max(ratio, 1 - epsLow), 1 + epsHigh);
      const isLow = ratio < 1 - epsLow && a < 0;
      const isHigh = ratio > 1 + epsHigh && a > 0;
      let tokLoss = -Math.min(ratio * a, clipped * a);
      let tokGrad = isLow || isHigh ? 0 : -a * ratio;
      if (logpRef !== undefined) {
        const d = logpRef[k]! - lpNew;
        const expD = Math.exp(d);
        const kl = expD - d - 1;
        klSum += kl;
        tokLoss += beta * kl;
        tokGrad += beta * (1 - expD);
      }
      loss += weights[k]! * tokLoss;
      grad[k] = weights[k]! * tokGrad;
      numTokens++;
      ratioSum += ratio;
      if (inputs.entropy !== undefined) entropySum += inputs.entropy[k]!;
      if (isLow) lowClipped++;
      if (isHigh) highClipped++;
    }
  }

  const denom = Math.max(numTokens, 1);
  return {
    loss,
    grad,
    metrics: {
      meanKl: logpRef === undefined ? null : klSum / denom,
      lowClipFraction: lowClipped / denom,
      highClipFraction: highClipped / denom,
      regionClipFraction: (lowClipped + highClipped) / denom,
      meanRatio: ratioSum / denom,
      meanEntropy: inputs.entropy === undefined ? null : entropySum / denom,
      numTokens,
      numMaskedTruncated,
    },
  };
}
