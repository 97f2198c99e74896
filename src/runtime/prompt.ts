// The text a model is conditioned on, in one place for training and serving: the question, with
// whitespace normalised, after the image prefix. The completion the model writes follows directly
// (`<think>…</think><answer>…</answer><eos>`), so no separator token is needed.
import type { VqaTokenizer } from '../data/tokenizer.ts';

export function normalizeQuestion(question: string): string {
  return question.replace(/\s+/g, ' ').trim();
}

/**
 * A question longer than the model's context leaves room for. Serving refuses it rather than
 * answer from a part of it: the part the model would read may not hold the actual ask.
 */
export class PromptTooLongError extends Error {
  override readonly name = 'PromptTooLongError';
  constructor(
    readonly model: string,
    readonly promptTokens: number,
    readonly maxPromptTokens: number,
  ) {
    super(`the prompt is ${promptTokens} tokens; model ${model} takes at most ${maxPromptTokens}`);
  }
}

/** Training prompt ids; a question longer than `maxTokens` keeps its end, where the actual ask usually is. */
export function promptIds(tokenizer: VqaTokenizer, question: string, maxTokens: number): number[] {
  const ids = tokenizer.encode(normalizeQuestion(question));
  return ids.length > maxTokens ? ids.slice(ids.length - maxTokens) : ids;
}

/** Serving prompt ids: the whole question, or PromptTooLongError when it does not fit `maxTokens`. */
export function wholePromptIds(tokenizer: VqaTokenizer, question: string, maxTokens: number, model: string): number[] {
  const ids = tokenizer.encode(normalizeQuestion(question));
  if (ids.length > maxTokens) throw new PromptTooLongError(model, ids.length, maxTokens);
  return ids;
}
