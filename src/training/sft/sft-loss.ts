// Supervised fine-tuning loss on the training graph's per-token log-probs: mean negative
// log-likelihood over the tokens the model is taught (the completion; never the prompt or padding).
// Returns the loss and dLoss/dlogprobs, the upstream gradient the training graph takes.
export interface SftLoss {
  loss: number;
  gradLogprobs: Float32Array;
  tokens: number;
}

export function sftLoss(logprobs: Float32Array, lossMask: Float32Array): SftLoss {
  if (logprobs.length !== lossMask.length) throw new Error('logprobs and lossMask differ in length');
  let tokens = 0;
  for (const m of lossMask) tokens += m;
  const grad = new Float32Array(logprobs.length);
  if (tokens === 0) return { loss: 0, gradLogprobs: grad, tokens: 0 };
  let sum = 0;
  for (let i = 0; i < logprobs.length; i++) {
    if (lossMask[i] === 0) continue;
    sum -= logprobs[i] * lossMask[i];
    grad[i] = -lossMask[i] / tokens;
  }
  return { loss: sum / tokens, gradLogprobs: grad, tokens };
}
