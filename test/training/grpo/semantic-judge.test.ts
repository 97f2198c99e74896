import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RuleBasedSemanticJudge, type JudgeCase } from '../../../src/training/grpo/semantic-judge.ts';
import { buildGroundedTrace, formatCompletion } from '../../../src/data/grounded-trace.ts';

const judge = new RuleBasedSemanticJudge();
const slake: JudgeCase = { question: 'Does the picture contain kidney?', answer: 'Yes', answerType: 'closed', modality: 'CT', organ: 'Abdomen' };

test('1 for a completion whose trace fits the image and the answer', () => {
  assert.equal(judge.judge('<think>CT of the abdomen; both kidneys are seen.</think><answer>yes</answer>', slake), 1);
});

test('0 without a trace or an answer', () => {
  assert.equal(judge.judge('yes', slake), 0);
  assert.equal(judge.judge('<think></think><answer>yes</answer>', slake), 0);
  assert.equal(judge.judge('<think>CT of the abdomen.</think><answer></answer>', slake), 0);
  assert.equal(judge.judge('<think>CT of the abdomen.</think>', slake), 0);
});

test('0 for a hallucinated or self-contradicting trace', () => {
  assert.equal(judge.judge('<think>MRI of the abdomen.</think><answer>yes</answer>', slake), 0); // wrong modality
  assert.equal(judge.judge('<think>CT of the head.</think><answer>yes</answer>', slake), 0); // wrong region
  assert.equal(judge.judge('<think>CT of the abdomen; no kidney is seen.</think><answer>yes</answer>', slake), 0);
});

test('does not look at the gold answer: a wrong but consistent completion still scores 1', () => {
  assert.equal(judge.judge('<think>CT of the abdomen; no kidney is seen.</think><answer>no</answer>', slake), 1);
});

test('the SFT grounded trace with the gold answer scores 1 on real label combinations', () => {
  const cases: JudgeCase[] = [
    { question: 'Is this a T1 weighted image?', answer: 'No', answerType: 'closed', modality: 'MRI', organ: 'Brain_Tissue' },
    { question: 'Which organ is abnormal?', answer: 'Lung', answerType: 'open', modality: 'X-Ray', organ: 'Lung' },
    { question: 'What modality is used to take this image?', answer: 'CT', answerType: 'open', modality: 'CT', organ: 'Neck' },
    { question: 'Is there a fracture?', answer: 'Yes', answerType: 'closed', organ: 'head' },
    { question: 'Where is the mass?', answer: 'Pancreas', answerType: 'open', organ: 'abd' },
  ];
  for (const c of cases) {
    const completion = formatCompletion(buildGroundedTrace({ modality: c.modality, organ: c.organ }), c.answer);
    assert.equal(judge.judge(completion, c), 1, completion);
  }
});
