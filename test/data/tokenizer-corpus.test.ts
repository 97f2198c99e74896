import { test } from 'node:test';
import assert from 'node:assert/strict';
import { caseCorpus, tokenizerCorpus } from '../../src/data/tokenizer-corpus.ts';
import type { VqaCase } from '../../src/data/vqa-case.ts';

const base: VqaCase = {
  id: 'x',
  imagePath: '/d/a.jpg',
  question: 'Is the liver enlarged?',
  answer: 'yes',
  answerType: 'closed',
  dataset: 'slake',
  modality: 'CT',
  organ: 'Abdomen',
  contentType: 'Size',
  extra: {},
};

test('a case contributes its question, its options and its grounded completion', () => {
  assert.deepEqual(caseCorpus(base), [
    'Is the liver enlarged?',
    '<think>CT of the abdomen; the question asks about the size of a structure.</think><answer>yes</answer>',
  ]);
  const mc = { ...base, answer: 'Liver', options: ['Liver', 'Spleen'] };
  assert.deepEqual(caseCorpus(mc).slice(0, 3), ['Is the liver enlarged?', 'Liver', 'Spleen']);
  assert.equal(tokenizerCorpus([base, mc]).length, 2 + 4);
});
