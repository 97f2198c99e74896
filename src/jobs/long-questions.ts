// Uploaded questions longer than the base model reads. Training (and the scoring of the held-out
// part) reads such a question by its last tokens, as the trainers build every prompt; the job says
// so in a warning with the lines, so nothing is cut without the admin knowing.
import type { VqaTokenizer } from '../data/tokenizer.ts';
import type { VqaCase } from '../data/vqa-case.ts';
import { normalizeQuestion } from '../runtime/prompt.ts';

export interface LongQuestions {
  /** JSONL lines (1-based) of the cases whose question is over `limit` tokens. */
  lines: number[];
  /** Tokens of the longest question. */
  longest: number;
}

export function findLongQuestions(tokenizer: VqaTokenizer, cases: readonly VqaCase[], caseLines: readonly number[], limit: number): LongQuestions {
  const lines: number[] = [];
  let longest = 0;
  cases.forEach((c, i) => {
    const tokens = tokenizer.encode(normalizeQuestion(c.question)).length;
    longest = Math.max(longest, tokens);
    if (tokens > limit) lines.push(caseLines[i] ?? i + 1);
  });
  return { lines, longest };
}

/** The warning a job records, or undefined when every question fits. */
export function longQuestionsWarning(found: LongQuestions, limit: number): string | undefined {
  if (found.lines.length === 0) return undefined;
  const shown = found.lines.slice(0, 10).join(', ');
  const more = found.lines.length > 10 ? ` and ${found.lines.length - 10} more` : '';
  return `${found.lines.length} question(s) are longer than the base model reads (${limit} tokens; the longest has ${found.longest}): lines ${shown}${more}. Training and scoring read their last ${limit} tokens.`;
}
