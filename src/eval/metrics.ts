// Aggregate evaluation metrics over a set of model completions. Rates over an empty subset are null
// (not 0, not NaN): "no open questions in this split" must not read as "0% on open questions".
//
// Definitions (the eval CLI, the experiment report and the model manifests all read these):
//  - accuracy: a completion is correct when its answer (content of its last closed <answer> block; the
//    whole text for an untagged completion) passes `scoreAnswer(...).correct` — closed questions by
//    yes/no polarity, option letter/text or the question's own alternatives; open questions by exact
//    match after normalisation and the medical synonym table. Token-F1 partial credit is reported
//    separately (`open.meanCredit`), never counted as correct.
//  - format rate: exactly one think block then one answer block, nothing else (`isWellFormatted`).
//  - grounding rate: over cases with a modality or organ label, the think block names every labelled one
//    and contradicts neither (`traceMetadataGrounding`, whose comment defines it precisely; VQA-RAD has an
//    organ but no modality, so only its body region is checked). A missing think block is not grounded.
//  - yes-bias: over questions whose gold answer is exactly "yes" or "no", predicted-yes rate minus
//    gold-yes rate; > 0 means the model says yes more often than it should. A prediction counts as "yes"
//    when its answer starts with a yes word ("Yes, there is…").
//  - mean completion length: tokens when every prediction reports its token count, else whitespace words.

import { exactYesNo, scoreAnswer, yesNoPolarity } from './answer-match.ts';
import { modalityOfLabel, traceMetadataGrounding } from './clinical-vocabulary.ts';
import { countWords, extractAnswer, extractThink, isWellFormatted } from './completion-format.ts';
import { wilsonInterval, type Interval } from './proportion-stats.ts';

export { normalCdf, twoProportionZTest, wilsonInterval, type Interval, type ZTestResult } from './proportion-stats.ts';

export interface EvalCase {
  question: string;
  answer: string;
  answerType: 'closed' | 'open';
  options?: string[];
  modality?: string;
  organ?: string;
  /** e.g. 'vqa-rad', 'slake'. */
  dataset?: string;
}

export interface EvalPrediction {
  case: EvalCase;
  /** The raw completion (`<think>…</think><answer>…</answer>`, or a bare answer for untagged baselines). */
  completion: string;
  /** Completion length in tokenizer tokens, when the generator reported it. */
  completionTokens?: number;
  /** Wall time to answer this case, when measured. */
  latencyMs?: number;
}

export interface AccuracyGroup {
  n: number;
  correct: number;
  accuracy: number | null;
}

export interface LatencySummary {
  n: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
}

/** Every metric for one set of predictions. */
export interface EvalSummary {
  n: number;
  correct: number;
  accuracy: number | null;
  /** Wilson 95% interval of overall accuracy. */
  accuracyInterval: Interval;
  closed: AccuracyGroup;
  /** Open questions count as correct only on a full match; `meanCredit` adds token-F1 partial credit. */
  open: AccuracyGroup & { meanCredit: number | null };
  /** Keyed by canonical modality ('ct', 'mri', 'xray', ...) or the raw label if unrecognised; cases without one are left out. */
  perModality: Record<string, AccuracyGroup>;
  /** Fraction of completions with exactly one think block then one answer block. */
  formatRate: number | null;
  /** Over cases with a modality or organ label (n): think block grounded in them. */
  traceGrounding: { n: number; grounded: number; rate: number | null };
  /** Over yes/no questions: predicted-yes rate minus gold-yes rate (> 0: the model over-says yes). */
  yesBias: { n: number; predictedYesRate: number | null; goldYesRate: number | null; bias: number | null };
  meanCompletionLength: { value: number | null; unit: 'tokens' | 'words' };
  /** null unless every prediction carries `latencyMs`. */
  latency: LatencySummary | null;
}

export interface EvalMetrics extends EvalSummary {
  /** The same metrics per dataset (cases without `dataset` appear only in the overall figures). */
  perDataset: Record<string, EvalSummary>;
}

const rate = (k: number, n: number): number | null => (n === 0 ? null : k / n);

function tally(groups: Record<string, AccuracyGroup>, key: string, correct: boolean): void {
  groups[key] ??= { n: 0, correct: 0, accuracy: null };
  const g = groups[key];
  g.n++;
  if (correct) g.correct++;
  g.accuracy = g.correct / g.n;
}

/** Nearest-rank percentile of sorted values. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** How one completion scores against its case: the answer between the answer tags, or nothing. */
export function scorePrediction(completion: string, c: EvalCase): { correct: boolean; credit: number } {
  return scoreExtracted(extractAnswer(completion), c);
}

function scoreExtracted(answer: string | null, c: EvalCase): { correct: boolean; credit: number } {
  return answer === null ? { correct: false, credit: 0 } : scoreAnswer(answer, c);
}

/** All metrics of one set of predictions, without the per-dataset breakdown. */
export function summarizePredictions(predictions: readonly EvalPrediction[]): EvalSummary {
  const n = predictions.length;
  let correct = 0;
  const closed: AccuracyGroup = { n: 0, correct: 0, accuracy: null };
  const open = { n: 0, correct: 0, creditSum: 0 };
  const perModality: Record<string, AccuracyGroup> = {};
  let wellFormatted = 0;
  let groundingN = 0;
  let grounded = 0;
  let yesNoN = 0;
  let predictedYes = 0;
  let goldYes = 0;
  const useTokens = n > 0 && predictions.every((p) => p.completionTokens !== undefined);
  let lengthSum = 0;

  for (const { case: c, completion, completionTokens } of predictions) {
    const answer = extractAnswer(completion);
    const score = scoreExtracted(answer, c);
    if (score.correct) correct++;

    const typeGroup = c.answerType === 'closed' ? closed : open;
    typeGroup.n++;
    if (score.correct) typeGroup.correct++;
    if (c.answerType === 'open') open.creditSum += score.credit;

    if (c.modality?.trim()) tally(perModality, modalityOfLabel(c.modality) ?? c.modality.trim(), score.correct);

    if (isWellFormatted(completion)) wellFormatted++;

    const grounding = traceMetadataGrounding(extractThink(completion) ?? '', c);
    if (grounding.applicable) {
      groundingN++;
      if (grounding.grounded) grounded++;
    }

    const gold = exactYesNo(c.answer);
    if (gold !== null) {
      yesNoN++;
      if (gold === 'yes') goldYes++;
      if (answer !== null && yesNoPolarity(answer) === 'yes') predictedYes++;
    }

    lengthSum += useTokens ? completionTokens! : countWords(completion);
  }

  let latency: LatencySummary | null = null;
  if (n > 0 && predictions.every((p) => p.latencyMs !== undefined)) {
    const sorted = predictions.map((p) => p.latencyMs!).sort((a, b) => a - b);
    latency = {
      n,
      meanMs: sorted.reduce((a, b) => a + b, 0) / n,
      p50Ms: percentile(sorted, 50),
      p95Ms: percentile(sorted, 95),
    };
  }

  const predictedYesRate = rate(predictedYes, yesNoN);
  const goldYesRate = rate(goldYes, yesNoN);
  return {
    n,
    correct,
    accuracy: rate(correct, n),
    accuracyInterval: wilsonInterval(correct, n),
    closed: { ...closed, accuracy: rate(closed.correct, closed.n) },
    open: { n: open.n, correct: open.correct, accuracy: rate(open.correct, open.n), meanCredit: rate(open.creditSum, open.n) },
    perModality,
    formatRate: rate(wellFormatted, n),
    traceGrounding: { n: groundingN, grounded, rate: rate(grounded, groundingN) },
    yesBias: {
      n: yesNoN,
      predictedYesRate,
      goldYesRate,
      bias: predictedYesRate === null || goldYesRate === null ? null : predictedYesRate - goldYesRate,
    },
    meanCompletionLength: { value: rate(lengthSum, n), unit: useTokens ? 'tokens' : 'words' },
    latency,
  };
}

/** All metrics overall and per dataset. */
export function computeEvalMetrics(predictions: readonly EvalPrediction[]): EvalMetrics {
  const byDataset = new Map<string, EvalPrediction[]>();
  for (const p of predictions) {
    if (!p.case.dataset) continue;
    const list = byDataset.get(p.case.dataset) ?? [];
    list.push(p);
    byDataset.set(p.case.dataset, list);
  }
  const perDataset: Record<string, EvalSummary> = {};
  for (const name of [...byDataset.keys()].sort()) perDataset[name] = summarizePredictions(byDataset.get(name)!);
  return { ...summarizePredictions(predictions), perDataset };
}

/** The `--json` line of `npm run eval`, which scripts parse: these keys, snake_case, rates in [0, 1] or null. */
export interface EvalJsonSummary {
  n: number;
  accuracy: number | null;
  closed_accuracy: number | null;
  open_accuracy: number | null;
  format_rate: number | null;
  grounding_rate: number | null;
  yes_bias: number | null;
}

export function evalJsonSummary(m: EvalSummary): EvalJsonSummary {
  return {
    n: m.n,
    accuracy: m.accuracy,
    closed_accuracy: m.closed.accuracy,
    open_accuracy: m.open.accuracy,
    format_rate: m.formatRate,
    grounding_rate: m.traceGrounding.rate,
    yes_bias: m.yesBias.bias,
  };
}
