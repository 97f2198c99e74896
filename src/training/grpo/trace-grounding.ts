// Rule-based consistency check of a completion's reasoning trace, used by the embedded semantic judge.
// Deliberately simple and conservative; every rule below is one a clinician would agree a trace must pass:
//
//  1. Metadata grounding (`traceMetadataGrounding`, shared with the evaluation's grounding rate): the trace
//     names the case's known modality and body region, and affirms no other modality and no body region
//     that cannot be in the same image (head vs abdomen; chest and abdomen are compatible because the
//     upper abdomen is on chest CTs). Labels the case lacks are not checked.
//  2. Presence questions ("Is there X?", "Are there X?", "Does the image show X?", "Is X present/seen/
//     visible?") with a yes/no answer: the last clause of the trace that mentions X must have the answer's
//     polarity: a clause containing a negation word counts as "X absent", any other mention as "X present".
//     Traces that never mention X pass — there is no evidence of inconsistency.
//  3. Answer vs trace: an answer that names a modality must not be contradicted by the trace naming only
//     other modalities ("CT of the head" then "MRI"), and an answer naming a body region must not meet a
//     trace region that cannot share its image. This works even without metadata (VQA-RAD modality).
//  4. Answer vs metadata: an answer must not name a modality other than the case's, nor a body region
//     incompatible with the case's ("liver" for a head CT). This uses only the image's labels, never the
//     gold answer: correctness stays the accuracy reward's job.
//
// The data layer's `isTraceGrounded` (SFT trace builder) checks a subset of rule 1 with its own word list;
// a test checks that every trace it builds for the datasets' label combinations passes here.

import { canonicalTokens, yesNoPolarity } from '../../eval/answer-match.ts';
import {
  modalitiesMentioned,
  modalityOfLabel,
  regionOfLabel,
  regionsIncompatible,
  regionsMentioned,
  traceMetadataGrounding,
  type MetadataGrounding,
} from '../../eval/clinical-vocabulary.ts';

export interface GroundingCase {
  question: string;
  modality?: string;
  organ?: string;
}

export interface GroundingVerdict {
  /** Every rule passed. */
  grounded: boolean;
  /** Rule 1, as the evaluation computes it (`applicable: false` when the case has no labels). */
  metadata: MetadataGrounding;
  /** Rule 2. */
  presenceConsistent: boolean;
  /** Rule 3. */
  answerMatchesTrace: boolean;
  /** Rule 4. */
  answerMatchesMetadata: boolean;
}

const CLAUSE_NEGATIONS = new Set([
  'no',
  'not',
  'without',
  'absent',
  'absence',
  'none',
  'neither',
  'nor',
  'negative',
  'cannot',
  'isnt',
  'arent',
  'doesnt',
  'dont',
  'wasnt',
  'werent',
  'lack',
  'lacking',
  'excluded',
  'ruled',
]);
/** Words that end the subject phrase of a presence question ("is there a mass IN the liver"). */
const SUBJECT_STOP = new Set([
  'in',
  'on',
  'at',
  'within',
  'near',
  'along',
  'involving',
  'of',
  'seen',
  'visible',
  'present',
  'noted',
  'evident',
  'under',
  'above',
  'below',
  'beneath',
  'behind',
  'around',
  'between',
  'into',
  'across',
  'over',
  'inside',
  'outside',
  'adjacent',
  'throughout',
  'that',
  'which',
  'shown',
  'this',
  'these',
  'image',
  'scan',
  'film',
  'patient',
  'here',
  'or',
  'and',
  'to',
  'from',
  'with',
  'by',
]);
const SUBJECT_LEADING_FILLER = new Set(['any', 'some', 'evidence', 'sign', 'signs', 'of', 'abnormal']);

/** Subject X of a presence question, as canonical tokens, or null for other question shapes. */
export function presenceSubject(question: string): string[] | null {
  const q = canonicalTokens(question);
  let start = -1;
  let end = q.length;
  if ((q[0] === 'is' || q[0] === 'are') && q[1] === 'there') start = 2;
  else if (q[0] === 'doe' || q[0] === 'do' || q[0] === 'does') {
    // "does the image show X", "does this patient have X" (canonical "does" singularises to "doe")
    const verb = q.findIndex((t, i) => i > 0 && ['show', 'have', 'demonstrate', 'contain', 'reveal'].includes(t));
    if (verb > 0) start = verb + 1;
  } else if (q[0] === 'is' || q[0] === 'are') {
    const tail = q.findIndex((t, i) => i > 1 && ['present', 'seen', 'visible', 'noted', 'evident'].includes(t));
    if (tail > 1) {
      start = 1;
      end = tail;
    }
  }
  if (start < 0) return null;
  let subject = q.slice(start, end);
  while (subject.length > 0 && SUBJECT_LEADING_FILLER.has(subject[0]!)) subject = subject.slice(1);
  const stop = subject.findIndex((t) => SUBJECT_STOP.has(t));
  if (stop >= 0) subject = subject.slice(0, stop);
  return subject.length > 0 ? subject : null;
}

/** Clauses of the trace in order: split at sentence punctuation and at contrastive conjunctions. */
function clauses(trace: string): string[] {
  return trace
    .split(/[.;!?\n]+|\b(?:but|however|although|whereas|while)\b/i)
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * 'present' / 'absent' per the last clause mentioning all subject tokens; null when none mentions it.
 * Clauses that mention the question itself (the SFT trace's "the question asks about…") are skipped.
 */
export function tracePresenceVerdict(trace: string, subject: readonly string[]): 'present' | 'absent' | null {
  let verdict: 'present' | 'absent' | null = null;
  for (const clause of clauses(trace)) {
    const toks = canonicalTokens(clause);
    // "the question asks whether a finding is present" talks about the question, not the image.
    if (toks.includes('question')) continue;
    if (!subject.every((t) => toks.includes(t))) continue;
    verdict = toks.some((t) => CLAUSE_NEGATIONS.has(t)) ? 'absent' : 'present';
  }
  return verdict;
}

export function checkTraceGrounding(trace: string, answer: string, c: GroundingCase): GroundingVerdict {
  // Rule 1: with no labels at all there is nothing to contradict, so the metadata rule passes.
  const metadata = traceMetadataGrounding(trace, c);
  const metadataOk = !metadata.applicable || metadata.grounded;

  // Rule 2.
  let presenceConsistent = true;
  const polarity = yesNoPolarity(answer);
  const subject = presenceSubject(c.question);
  if (polarity !== null && subject !== null) {
    const verdict = tracePresenceVerdict(trace, subject);
    if (verdict !== null) presenceConsistent = (verdict === 'present') === (polarity === 'yes');
  }

  const answerModalities = modalitiesMentioned(answer).affirmed;
  const answerRegions = regionsMentioned(answer).affirmed;

  // Rule 3.
  const traceModalities = modalitiesMentioned(trace).affirmed;
  const traceRegions = regionsMentioned(trace).affirmed;
  const modalityClash = answerModalities.size > 0 && traceModalities.size > 0 && ![...answerModalities].some((m) => traceModalities.has(m));
  const regionClash = [...answerRegions].some((a) => [...traceRegions].some((t) => regionsIncompatible(a, t)));
  const answerMatchesTrace = !modalityClash && !regionClash;

  // Rule 4.
  const caseModality = modalityOfLabel(c.modality);
  const caseRegion = regionOfLabel(c.organ);
  const answerMatchesMetadata =
    !(caseModality !== null && [...answerModalities].some((m) => m !== caseModality)) &&
    !(caseRegion !== null && [...answerRegions].some((r) => regionsIncompatible(r, caseRegion)));

  const grounded = metadataOk && presenceConsistent && answerMatchesTrace && answerMatchesMetadata;
  return { grounded, metadata, presenceConsistent, answerMatchesTrace, answerMatchesMetadata };
}
