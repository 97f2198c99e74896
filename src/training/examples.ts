// A VQA case as token ids for teacher forcing: the prompt (question), then the completion the model
// is taught — `<answer>a</answer><eos>` (answer-only SFT) or `<think>trace</think><answer>a</answer><eos>`
// (grounded-trace SFT, trace built from the case's metadata, never from its answer).
import type { VqaCase } from '../data/vqa-case.ts';
import type { VqaTokenizer } from '../data/tokenizer.ts';
import { buildGroundedTrace } from '../data/grounded-trace.ts';
import { ANSWER_CLOSE, ANSWER_OPEN } from '../data/special-tokens.ts';
import { formatCompletion } from '../data/grounded-trace.ts';
import { promptIds } from '../runtime/prompt.ts';

export type TraceMode = 'none' | 'grounded';

export interface EncodedExample {
  caseIndex: number;
  ids: number[];
  /** ids[0, promptLength) is the prompt; the rest is taught. */
  promptLength: number;
}

export function completionText(c: VqaCase, mode: TraceMode): string {
  const answer = c.answer.trim();
  return mode === 'grounded' ? formatCompletion(buildGroundedTrace(c), answer) : `${ANSWER_OPEN}${answer}${ANSWER_CLOSE}`;
}

/** null when the example does not fit in `maxTextTokens` even with the question shortened. */
export function encodeExample(tk: VqaTokenizer, c: VqaCase, caseIndex: number, mode: TraceMode, maxTextTokens: number): EncodedExample | null {
  const completion = [...tk.encode(completionText(c, mode)), tk.eosId];
  const room = maxTextTokens - completion.length;
  if (room < 4) return null;
  const prompt = promptIds(tk, c.question, room);
  if (prompt.length === 0) return null;
  return { caseIndex, ids: [...prompt, ...completion], promptLength: prompt.length };
}
