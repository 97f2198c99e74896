import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  accuracyReward,
  combineRewards,
  formatReward,
  lengthScore,
  makeLengthReward,
  makeSemanticReward,
  type RewardCase,
} from '../../../src/training/grpo/rewards.ts';
import { RuleBasedSemanticJudge, type SemanticJudge } from '../../../src/training/grpo/semantic-judge.ts';

const yesNo: RewardCase = { question: 'Is there a pleural effusion?', answer: 'Yes', answerType: 'closed', modality: 'X-Ray', organ: 'Lung' };
const choice: RewardCase = { question: 'Which organ is enlarged?', answer: 'Spleen', answerType: 'closed', options: ['Liver', 'Spleen', 'Heart'] };
const openKidney: RewardCase = { question: 'Which organ is abnormal?', answer: 'Kidney', answerType: 'open', modality: 'CT', organ: 'Abdomen' };
const openLobe: RewardCase = { question: 'Where is the nodule?', answer: 'right lower lobe', answerType: 'open', modality: 'CT', organ: 'Lung' };

const wrap = (think: string, answer: string) => `<think>${think}</think><answer>${answer}</answer>`;
const close = (actual: readonly number[], expected: readonly number[]) => {
  assert.equal(actual.length, expected.length, `${actual.length} rewards, expected ${expected.length}`);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]!) < 1e-12, `[${i}] ${a} vs ${expected[i]}`));
};

test('accuracy: closed yes/no, option letter and text, open synonyms, token-F1 partial credit, no answer', () => {
  const completions = [
    wrap('x', 'yes'),
    wrap('x', 'No'),
    wrap('x', 'B'),
    wrap('x', 'the spleen'),
    wrap('x', 'A'),
    wrap('x', 'renal'),
    wrap('x', 'right upper lobe'),
    '<think>x</think><answer>kidn', // never closed
    'kidney', // untagged: a bare answer
  ];
  const cases = [yesNo, yesNo, choice, choice, choice, openKidney, openLobe, openKidney, openKidney];
  close(accuracyReward(completions, cases), [1, 0, 1, 1, 0, 1, 2 / 3, 0, 1]);
});

test('format: exactly one think block then one answer block', () => {
  const completions = [wrap('CT of the lungs.', 'yes'), 'yes', '<think>a</think><answer>b</answer><answer>c</answer>', `${wrap('a', 'b')} extra`];
  assert.deepEqual(formatReward(completions, [yesNo, yesNo, yesNo, yesNo]), [1, 0, 0, 0]);
});

test('length score: linear to the target, flat to the cap, 0 beyond it', () => {
  assert.equal(lengthScore(0, 10, 20), 0);
  assert.equal(lengthScore(5, 10, 20), 0.5);
  assert.equal(lengthScore(10, 10, 20), 1);
  assert.equal(lengthScore(20, 10, 20), 1);
  assert.equal(lengthScore(21, 10, 20), 0);
  assert.equal(lengthScore(1000, 10), 1); // no cap
});

test("length 'ecr' rewards longer chains whatever the answer; 'cwr' only when correct", () => {
  const words = (k: number) => Array.from({ length: k }, (_, i) => `w${i}`).join(' ');
  const completions = [wrap(words(2), 'yes'), wrap(words(4), 'no'), wrap(words(8), 'yes'), wrap(words(9), 'yes'), 'yes'];
  const cases = [yesNo, yesNo, yesNo, yesNo, yesNo];
  const ecr = makeLengthReward({ mode: 'ecr', targetWords: 4, capWords: 8 });
  const cwr = makeLengthReward({ mode: 'cwr', targetWords: 4, capWords: 8 });
  close(ecr(completions, cases), [0.5, 1, 1, 0, 0]);
  close(cwr(completions, cases), [0.5, 0, 1, 0, 0]); // the 4-word chain answers "no": wrong
  // Partial token-F1 credit is not "correct" for cwr.
  close(cwr([wrap(words(4), 'right upper lobe')], [openLobe]), [0]);
  close(cwr([wrap(words(4), 'right lower lobe')], [openLobe]), [1]);
  assert.throws(() => makeLengthReward({ mode: 'ecr', targetWords: 0 }));
  assert.throws(() => makeLengthReward({ mode: 'ecr', targetWords: 10, capWords: 5 }));
  assert.throws(() => makeLengthReward({ mode: 'xyz' as 'ecr', targetWords: 10 }));
});

test('semantic: the embedded judge scores trace/answer/metadata consistency 0/1', async () => {
  const semantic = makeSemanticReward(new RuleBasedSemanticJudge());
  const completions = [
    wrap('X-ray of the chest; fluid blunts the right costophrenic angle.', 'yes'), // grounded, consistent
    wrap('CT of the abdomen.', 'yes'), // wrong modality and region for this image
    wrap('X-ray of the chest; no pleural effusion is seen.', 'yes'), // trace says absent, answer says yes
    'yes', // no trace
  ];
  assert.deepEqual(await semantic(completions, [yesNo, yesNo, yesNo, yesNo]), [1, 0, 0, 0]);
});

test('semantic: judge errors throw by default or become NaN (not applicable)', async () => {
  const flaky: SemanticJudge = {
    judge: (completion) => {
      if (completion.includes('boom')) throw new Error('judge down');
      return 1;
    },
  };
  await assert.rejects(makeSemanticReward(flaky)(['ok', 'boom'], [yesNo, yesNo]), /judge down/);
  const values = await makeSemanticReward(flaky, { onJudgeError: 'nan', concurrency: 1 })(['ok', 'boom'], [yesNo, yesNo]);
  assert.equal(values[0], 1);
  assert.ok(Number.isNaN(values[1]));
});

test('combineRewards: weighted sum, NaN skipped, default weight 1', () => {
  const total = combineRewards({ accuracy: [1, 0, 0.5], format: [1, 1, 0], semantic: [Number.NaN, 1, 1] }, { accuracy: 2, semantic: 0.5 });
  close(total, [3, 1.5, 1.5]);
  assert.throws(() => combineRewards({ a: [1] }, { b: 1 }), /unknown/);
  assert.throws(() => combineRewards({ a: [1], b: [1, 2] }), /expected/);
});

test('rewards reject misaligned inputs', () => {
  assert.throws(() => accuracyReward(['yes'], []), /1 completions but 0 cases/);
});
