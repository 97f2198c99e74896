// The text the tokenizer is trained on: exactly the kinds of string the model will read and write.
// Questions are read (prompts), option texts may be shown with them, and completions are written in
// the grounded `<think>trace</think><answer>…</answer>` form. The answer-only form adds no new text
// (special tokens are cut out before BPE sees anything), so it is not listed separately.
import { buildGroundedTrace, formatCompletion } from './grounded-trace.ts';
import type { VqaCase } from './vqa-case.ts';

/** Strings for one case: its question, its option texts, and its grounded completion. */
export function caseCorpus(c: VqaCase): string[] {
  const out = [c.question];
  if (c.options) out.push(...c.options);
  out.push(formatCompletion(buildGroundedTrace(c), c.answer));
  return out;
}

export function tokenizerCorpus(cases: Iterable<VqaCase>): string[] {
  const out: string[] = [];
  for (const c of cases) out.push(...caseCorpus(c));
  return out;
}
