import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTraceGrounding, presenceSubject, tracePresenceVerdict } from '../../../src/training/grpo/trace-grounding.ts';

test('presence subject of yes/no presence questions', () => {
  assert.deepEqual(presenceSubject('Is there air under the diaphragm?'), ['air']);
  assert.deepEqual(presenceSubject('Are there any fractures in this image?'), ['fracture']);
  assert.deepEqual(presenceSubject('Is there evidence of a pneumothorax?'), ['pneumothorax']);
  assert.deepEqual(presenceSubject('Does the image show cardiomegaly?'), ['cardiomegaly']);
  assert.deepEqual(presenceSubject('Is a mass present in the liver?'), ['mass']);
  assert.equal(presenceSubject('What modality is this?'), null);
  assert.equal(presenceSubject('Is this an MRI?'), null);
});

test('presence verdict: the last clause mentioning the subject decides; question talk is skipped', () => {
  assert.equal(tracePresenceVerdict('CT of the chest; a small pneumothorax on the left.', ['pneumothorax']), 'present');
  assert.equal(tracePresenceVerdict('CT of the chest; no pneumothorax.', ['pneumothorax']), 'absent');
  assert.equal(tracePresenceVerdict('A pneumothorax was suspected, but no pneumothorax is seen.', ['pneumothorax']), 'absent');
  assert.equal(tracePresenceVerdict('No effusion. A small pneumothorax.', ['pneumothorax']), 'present');
  assert.equal(tracePresenceVerdict('CT of the chest.', ['pneumothorax']), null);
  assert.equal(tracePresenceVerdict('CT of the chest; the question asks whether a pneumothorax is present.', ['pneumothorax']), null);
});

test('a consistent, grounded trace passes every rule', () => {
  const v = checkTraceGrounding('X-ray of the chest; a right pleural effusion.', 'yes', {
    question: 'Is there a pleural effusion?',
    modality: 'X-Ray',
    organ: 'Lung',
  });
  assert.equal(v.grounded, true);
  assert.equal(v.metadata.grounded, true);
  assert.equal(v.presenceConsistent, true);
  assert.equal(v.answerMatchesTrace, true);
  assert.equal(v.answerMatchesMetadata, true);
});

test('rule 1: metadata (modality and region named, none contradicted)', () => {
  const c = { question: 'What is abnormal?', modality: 'MRI', organ: 'Brain_Tissue' };
  assert.equal(checkTraceGrounding('CT of the brain.', 'infarct', c).grounded, false);
  assert.equal(checkTraceGrounding('MRI of the liver.', 'infarct', c).grounded, false);
  assert.equal(checkTraceGrounding('T2 weighted image of the brain.', 'infarct', c).grounded, true);
  // no labels: nothing to contradict, the trace may say anything about the image
  assert.equal(checkTraceGrounding('CT of the abdomen.', 'infarct', { question: 'What is abnormal?' }).grounded, true);
});

test('rule 2: presence answer agrees with the trace', () => {
  const c = { question: 'Is there a pneumothorax?', modality: 'CT', organ: 'Lung' };
  assert.equal(checkTraceGrounding('CT of the lungs; no pneumothorax.', 'no', c).grounded, true);
  assert.equal(checkTraceGrounding('CT of the lungs; no pneumothorax.', 'yes', c).presenceConsistent, false);
  assert.equal(checkTraceGrounding('CT of the lungs; a large pneumothorax.', 'No', c).grounded, false);
  assert.equal(checkTraceGrounding('CT of the lungs.', 'no', c).grounded, true); // no evidence either way
});

test('rule 3: the answer agrees with the trace, even without metadata', () => {
  const c = { question: 'What modality is this?', organ: 'head' };
  const v = checkTraceGrounding('CT of the head.', 'MRI', c);
  assert.equal(v.answerMatchesTrace, false);
  assert.equal(v.grounded, false);
  assert.equal(checkTraceGrounding('CT of the head.', 'CT', c).grounded, true);
  assert.equal(checkTraceGrounding('Image of the head.', 'MRI', c).grounded, true); // trace names no modality
  const where = checkTraceGrounding('Image of the head; the lesion is in the liver.', 'liver', { question: 'Where?' });
  assert.equal(where.answerMatchesTrace, false);
});

test('rule 4: the answer agrees with the image labels', () => {
  const c = { question: 'What modality is this?', modality: 'CT', organ: 'Brain_Tissue' };
  const v = checkTraceGrounding('An image of the brain.', 'MRI', c);
  assert.equal(v.metadata.grounded, false); // the trace does not name the CT either
  assert.equal(v.answerMatchesMetadata, false);
  const organ = checkTraceGrounding('CT of the brain.', 'the liver', { question: 'Which organ is shown?', modality: 'CT', organ: 'Brain_Tissue' });
  assert.equal(organ.answerMatchesMetadata, false);
  assert.equal(organ.grounded, false);
  // "femoral head" is in the pelvis, not the head
  const hip = checkTraceGrounding('CT of the pelvic cavity.', 'Left Femoral Head', {
    question: 'What tissue is the white part?',
    modality: 'CT',
    organ: 'Pelvic Cavity',
  });
  assert.equal(hip.grounded, true);
});
