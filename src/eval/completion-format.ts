// Parsing of `<think>…</think><answer>…</answer>` completions, shared by evaluation metrics and GRPO rewards
// so that "well formatted", "the answer" and "the reasoning" mean the same thing in both places.

const STRICT_FORMAT = /^\s*<think>([\s\S]*?)<\/think>\s*<answer>([\s\S]*?)<\/answer>\s*$/;
const ANY_TAG = /<\/?(?:think|answer)>/;
/** End-of-sequence / padding tokens a decoder may leave after the answer when decoded with specials kept. */
const TRAILING_END_TOKENS = /(?:\s*(?:<eos>|<pad>))+\s*$/;

/**
 * True iff the completion is exactly one think block followed by exactly one answer block, with nothing
 * but whitespace around or between them (trailing `<eos>`/`<pad>` tokens are ignored). Nested or repeated
 * tags fail (the lazy match would otherwise swallow a second block into the first one's content). An
 * answer block that was never closed (a completion cut at max_completion_length) fails: pass the raw
 * decoded text, including the `</answer>` stop string.
 */
export function isWellFormatted(completion: string): boolean {
  const m = STRICT_FORMAT.exec(completion.replace(TRAILING_END_TOKENS, ''));
  return m !== null && !ANY_TAG.test(m[1]!) && !ANY_TAG.test(m[2]!);
}

/** Content of the first complete think block, trimmed; null when there is none. */
export function extractThink(completion: string): string | null {
  const m = /<think>([\s\S]*?)<\/think>/.exec(completion);
  return m ? m[1]!.trim() : null;
}

/**
 * The answer a completion gives: the content of its last complete answer block (a model that restates
 * its answer is judged on the final one). A completion with no think/answer tags at all is taken as a
 * bare answer (baselines prompted without the format). A tagged completion without an answer block
 * gives null: it never committed to an answer.
 */
export function extractAnswer(completion: string): string | null {
  const blocks = [...completion.matchAll(/<answer>([\s\S]*?)<\/answer>/g)];
  if (blocks.length > 0) return blocks[blocks.length - 1]![1]!.trim();
  if (!ANY_TAG.test(completion)) return completion.replace(TRAILING_END_TOKENS, '').trim();
  return null;
}

/** Whitespace-separated word count (the length unit when token counts are not available). */
export function countWords(text: string): number {
  const trimmed = text.trim();
  return trimmed === '' ? 0 : trimmed.split(/\s+/).length;
}
