import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  canonicalTokens,
  closedMatch,
  exactYesNo,
  normalizeAnswer,
  openMatch,
  resolveOption,
  scoreAnswer,
  tokenF1,
  yesNoPolarity,
  type ScorableCase,
} from '../../src/eval/answer-match.ts';

const closed = (question: string, answer: string, options?: string[]): ScorableCase =>
  options ? { question, answer, answerType: 'closed', options } : { question, answer, answerType: 'closed' };
const open = (question: string, answer: string): ScorableCase => ({ question, answer, answerType: 'open' });

test('normalisation: case, punctuation, articles, number words, numerals', () => {
  assert.equal(normalizeAnswer('  The Left  Lung. '), 'left lung');
  assert.equal(normalizeAnswer('Two'), '2');
  assert.equal(normalizeAnswer('2.0 cm'), '2 cm');
  assert.equal(normalizeAnswer('3.5cm'), '3.5 cm');
  assert.equal(normalizeAnswer("patient's right"), 'patient right');
  assert.equal(normalizeAnswer('X-Ray'), 'x ray');
});

test('synonym table and singularisation apply to both sides', () => {
  assert.deepEqual(canonicalTokens('Renal'), ['kidney']);
  assert.deepEqual(canonicalTokens('kidneys'), ['kidney']);
  assert.deepEqual(canonicalTokens('Magnetic Resonance Imaging'), ['mri']);
  assert.deepEqual(canonicalTokens('X-ray'), ['xray']);
  assert.deepEqual(canonicalTokens('computed tomography'), ['ct']);
  // -us / -is / -as endings are not plurals
  assert.deepEqual(canonicalTokens('pelvis uterus pancreas'), ['pelvis', 'uterus', 'pancreas']);
});

test('yes/no polarity and exact yes/no', () => {
  assert.equal(yesNoPolarity('Yes, there is a mass'), 'yes');
  assert.equal(yesNoPolarity('no.'), 'no');
  assert.equal(yesNoPolarity('There is no mass'), null);
  assert.equal(exactYesNo('No'), 'no');
  assert.equal(exactYesNo('No acute findings'), null);
  assert.equal(exactYesNo('Left'), null);
});

test('closed yes/no questions match by polarity', () => {
  const c = closed('Is there air under the diaphragm?', 'No');
  assert.equal(closedMatch('no', c), true);
  assert.equal(closedMatch('No, the diaphragm is normal.', c), true);
  assert.equal(closedMatch('yes', c), false);
  assert.equal(closedMatch('there is no air', c), false); // no committed yes/no word first
});

test('closed multiple choice: option letter or option text', () => {
  const c = closed('Which organ is enlarged?', 'Liver', ['Heart', 'Liver', 'Spleen', 'Kidney']);
  assert.equal(resolveOption('B', c.options!), 1);
  assert.equal(resolveOption('(b)', c.options!), 1);
  assert.equal(resolveOption('option B', c.options!), 1);
  assert.equal(resolveOption('B. Liver', c.options!), 1);
  assert.equal(resolveOption('B. Heart', c.options!), null); // letter and text disagree
  assert.equal(resolveOption('hepatic', c.options!), 1); // synonym of the option text
  assert.equal(closedMatch('B', c), true);
  assert.equal(closedMatch('the liver', c), true);
  assert.equal(closedMatch('A', c), false);
  assert.equal(closedMatch('liver or spleen', c), false); // names two options
  // Gold given as a letter, prediction as text.
  const byLetter = closed('Which organ is enlarged?', 'C', ['Heart', 'Liver', 'Spleen']);
  assert.equal(closedMatch('spleen', byLetter), true);
  assert.equal(closedMatch('liver', byLetter), false);
  // "a mass" starts with the article, not option A.
  assert.equal(resolveOption('a mass', ['Liver', 'A mass']), 1);
  assert.equal(resolveOption('a', ['Liver', 'A mass']), 0);
});

test('closed questions that name their alternatives', () => {
  const ctOrMri = closed('Is this a CT or an MRI?', 'CT');
  assert.equal(closedMatch('CT', ctOrMri), true);
  assert.equal(closedMatch('computed tomography', ctOrMri), true);
  assert.equal(closedMatch('it is a CT scan', ctOrMri), true);
  assert.equal(closedMatch('MRI', ctOrMri), false);
  assert.equal(closedMatch('CT or MRI', ctOrMri), false);

  // SLAKE lists more than two alternatives after a comma-separated stem.
  const biggest = closed('Which is the biggest in this image,lung,liver or heart?', 'Lung');
  assert.equal(closedMatch('the lung is biggest', biggest), true);
  assert.equal(closedMatch('lungs', biggest), true);
  assert.equal(closedMatch('liver', biggest), false);
  assert.equal(closedMatch('lung and liver', biggest), false);

  const plane = closed('Which plane is the image scanned, transverse plane or coronal plane?', 'Coronal Plane');
  assert.equal(closedMatch('coronal', plane), true);
  assert.equal(closedMatch('transverse plane', plane), false);
});

test('open questions: normalised match with synonyms, token-F1 partial credit', () => {
  const kidney = open('Which organ is abnormal?', 'Kidney');
  assert.deepEqual(scoreAnswer('renal', kidney), { correct: true, credit: 1 });
  assert.deepEqual(scoreAnswer('The kidneys', kidney), { correct: true, credit: 1 });
  assert.deepEqual(scoreAnswer('liver', kidney), { correct: false, credit: 0 });

  const lobe = open('Where is the lesion?', 'right lower lobe');
  const partial = scoreAnswer('right upper lobe', lobe);
  assert.equal(partial.correct, false);
  // overlap 2 of 3 on both sides: P = R = 2/3
  assert.ok(Math.abs(partial.credit - 2 / 3) < 1e-12);
  assert.ok(Math.abs(tokenF1('lower lobe', 'right lower lobe') - 0.8) < 1e-12); // P=1, R=2/3
  assert.equal(tokenF1('', ''), 1);
  assert.equal(openMatch('MR', 'MRI'), true);
  assert.equal(openMatch('T2 weighted', 'T2'), true);
  assert.equal(openMatch('left', 'right'), false);
  assert.equal(openMatch('', 'left'), false);
});

test('every gold answer matches itself (a sample of real VQA-RAD/SLAKE shapes)', () => {
  const cases: ScorableCase[] = [
    closed('Does the picture contain liver?', 'Yes'),
    closed('Which is bigger in this image, liver or heart?', 'Almost the same'),
    closed('Which organ is abnormal, heart or lung?', 'Both'),
    open('What modality is used to take this image?', 'X-Ray'),
    open('How many kidneys are in this image?', '2'),
    open('Where is/are the abnormality located?', 'Left Lung, Right'),
  ];
  for (const c of cases) assert.deepEqual(scoreAnswer(c.answer, c), { correct: true, credit: 1 }, c.answer);
});
