import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeEvalMetrics, evalJsonSummary, summarizePredictions, type EvalPrediction } from '../../src/eval/metrics.ts';

const close = (a: number | null, b: number, msg?: string) => assert.ok(a !== null && Math.abs(a - b) < 1e-9, `${msg ?? ''} ${a} vs ${b}`);

// Eight hand-made predictions; the comment on each says how it must count.
const predictions: EvalPrediction[] = [
  // 1 correct, formatted, grounded; yes/no: predicted yes, gold yes
  {
    case: { question: 'Is there a nodule?', answer: 'Yes', answerType: 'closed', modality: 'CT', organ: 'Lung', dataset: 'slake' },
    completion: '<think>CT of the lungs.</think><answer>yes</answer>',
    completionTokens: 10,
    latencyMs: 10,
  },
  // 2 wrong, formatted, grounded; predicted yes, gold no
  {
    case: { question: 'Is the brain healthy?', answer: 'No', answerType: 'closed', modality: 'MRI', organ: 'Brain', dataset: 'slake' },
    completion: '<think>MRI of the brain.</think><answer>yes</answer>',
    completionTokens: 12,
    latencyMs: 20,
  },
  // 3 correct by synonym, formatted, NOT grounded (brain is incompatible with an abdominal image)
  {
    case: { question: 'Which organ is abnormal?', answer: 'Kidney', answerType: 'open', modality: 'CT', organ: 'Abdomen', dataset: 'slake' },
    completion: '<think>CT of the chest and brain.</think><answer>renal</answer>',
    completionTokens: 14,
    latencyMs: 30,
  },
  // 4 wrong (credit 2/3), untagged so not formatted, no think block so not grounded
  {
    case: { question: 'Where is the lesion?', answer: 'right lower lobe', answerType: 'open', modality: 'X-Ray', organ: 'Lung', dataset: 'slake' },
    completion: 'right upper lobe',
    completionTokens: 3,
    latencyMs: 40,
  },
  // 5 correct, formatted, grounded (VQA-RAD: organ only); predicted no, gold no
  {
    case: { question: 'Is there a bleed?', answer: 'No', answerType: 'closed', organ: 'head', dataset: 'vqa-rad' },
    completion: '<think>An image of the head.</think><answer>No</answer>',
    completionTokens: 9,
    latencyMs: 50,
  },
  // 6 the last answer block counts ('right' -> wrong), two answer blocks -> not formatted, grounded
  {
    case: { question: 'Which side?', answer: 'left', answerType: 'open', organ: 'chest', dataset: 'vqa-rad' },
    completion: '<think>An image of the chest.</think><answer>left</answer><answer>right</answer>',
    completionTokens: 16,
    latencyMs: 60,
  },
  // 7 answer never closed -> no answer, wrong, not formatted, grounded; gold no, not predicted yes
  {
    case: { question: 'Is the bowel dilated?', answer: 'No', answerType: 'closed', organ: 'abd', dataset: 'vqa-rad' },
    completion: '<think>An image of the abdomen.</think><answer>n',
    completionTokens: 20,
    latencyMs: 70,
  },
  // 8 correct (number word), formatted; no labels -> outside the grounding rate; no dataset
  {
    case: { question: 'How many kidneys?', answer: '2', answerType: 'open' },
    completion: '<think>Two are seen.</think><answer>two</answer>',
    completionTokens: 8,
    latencyMs: 80,
  },
];

test('overall metrics on a hand-computed set', () => {
  const m = computeEvalMetrics(predictions);
  assert.equal(m.n, 8);
  assert.equal(m.correct, 4); // 1, 3, 5, 8
  close(m.accuracy, 0.5);
  assert.ok(m.accuracyInterval.lower < 0.5 && m.accuracyInterval.upper > 0.5);
  assert.deepEqual(m.closed, { n: 4, correct: 2, accuracy: 0.5 }); // 1, 2, 5, 7
  assert.equal(m.open.n, 4);
  assert.equal(m.open.correct, 2); // 3, 8
  close(m.open.meanCredit, (1 + 2 / 3 + 0 + 1) / 4);
  assert.deepEqual(m.perModality, {
    ct: { n: 2, correct: 2, accuracy: 1 },
    mri: { n: 1, correct: 0, accuracy: 0 },
    xray: { n: 1, correct: 0, accuracy: 0 },
  });
  close(m.formatRate, 5 / 8); // 1, 2, 3, 5, 8
  assert.deepEqual(m.traceGrounding, { n: 7, grounded: 5, rate: 5 / 7 }); // 1, 2, 5, 6, 7 of 1..7
  // yes/no golds: 1 yes, 2 no, 5 no, 7 no; predicted yes: 1, 2
  assert.equal(m.yesBias.n, 4);
  close(m.yesBias.goldYesRate, 0.25);
  close(m.yesBias.predictedYesRate, 0.5);
  close(m.yesBias.bias, 0.25);
  assert.equal(m.meanCompletionLength.unit, 'tokens');
  close(m.meanCompletionLength.value, 92 / 8);
  assert.deepEqual(m.latency, { n: 8, meanMs: 45, p50Ms: 40, p95Ms: 80 });
});

test('per-dataset metrics', () => {
  const m = computeEvalMetrics(predictions);
  assert.deepEqual(Object.keys(m.perDataset), ['slake', 'vqa-rad']);
  const slake = m.perDataset.slake!;
  assert.equal(slake.n, 4);
  close(slake.accuracy, 0.5);
  assert.deepEqual(slake.traceGrounding, { n: 4, grounded: 2, rate: 0.5 });
  const rad = m.perDataset['vqa-rad']!;
  assert.equal(rad.n, 3);
  close(rad.accuracy, 1 / 3);
  assert.deepEqual(rad.traceGrounding, { n: 3, grounded: 3, rate: 1 });
  assert.deepEqual(rad.perModality, {});
  close(rad.yesBias.bias, 0); // golds no, no; predicted no, none
});

test('the --json summary has exactly the documented keys', () => {
  const json = evalJsonSummary(computeEvalMetrics(predictions));
  assert.deepEqual(Object.keys(json).sort(), ['accuracy', 'closed_accuracy', 'format_rate', 'grounding_rate', 'n', 'open_accuracy', 'yes_bias']);
  assert.equal(json.n, 8);
  close(json.grounding_rate, 5 / 7);
  close(json.yes_bias, 0.25);
});

test('empty subsets give null, not 0 or NaN; lengths fall back to words', () => {
  const m = summarizePredictions([]);
  assert.equal(m.accuracy, null);
  assert.equal(m.formatRate, null);
  assert.equal(m.yesBias.bias, null);
  assert.equal(m.latency, null);
  const onlyOpen = summarizePredictions([
    { case: { question: 'q', answer: 'liver', answerType: 'open' }, completion: '<think>a b c</think><answer>liver</answer>' },
  ]);
  assert.equal(onlyOpen.closed.accuracy, null);
  assert.equal(onlyOpen.traceGrounding.rate, null);
  assert.equal(onlyOpen.yesBias.n, 0);
  assert.deepEqual(onlyOpen.meanCompletionLength, { value: 3, unit: 'words' });
});
