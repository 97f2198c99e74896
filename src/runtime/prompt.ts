// The text a model is conditioned on, in one place for training and serving: the question, with
// whitespace normalised, after the image prefix. The completion the model writes follows directly
// (`<think>…</think><answer>…</answer><eos>`), so no separator token is needed.
import type { VqaTokenizer } from '../data/tokenizer.ts';

export function normalizeQuestion(question: string): string {
  return question.replace(/\s+/g, ' ').trim();
}

/** Prompt ids; a question longer than `maxTokens` keeps its end, where the actual ask usually is. */
export function promptIds(tokenizer: VqaTokenizer, question: string, maxTokens: number): number[] {
  const ids = tokenizer.encode(normalizeQuestion(question));
  return ids.length > maxTokens ? ids.slice(ids.length - maxTokens) : ids;
}
