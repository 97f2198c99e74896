// The semantic-alignment judge behind the `semantic` reward: does the completion's reasoning fit the image
// it was asked about and the answer it gives? Implementations may be local rules or a remote LLM.

import { extractAnswer, extractThink } from '../../eval/completion-format.ts';
import { checkTraceGrounding, type GroundingCase } from './trace-grounding.ts';

/** The case fields a judge may look at (structurally a subset of `RewardCase`). */
export interface JudgeCase extends GroundingCase {
  answer: string;
  answerType: 'closed' | 'open';
}

export interface SemanticJudge {
  judge(completion: string, c: JudgeCase): Promise<0 | 1> | 0 | 1;
}

/**
 * Embedded judge: 1 iff the completion has a think block and an answer, and `checkTraceGrounding` accepts
 * the trace (mentions the known modality/organ, contradicts neither, answer polarity consistent with the
 * trace for presence questions). It does not look at the gold answer: correctness is the accuracy reward's
 * job, and a correct guess with a hallucinated trace should not earn this one.
 */
export class RuleBasedSemanticJudge implements SemanticJudge {
  judge(completion: string, c: JudgeCase): 0 | 1 {
    const trace = extractThink(completion);
    const answer = extractAnswer(completion);
    if (trace === null || trace === '' || answer === null || answer === '') return 0;
    return checkTraceGrounding(trace, answer, c).grounded ? 1 : 0;
  }
}
