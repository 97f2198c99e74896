import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { caseFromRecord, imageRefProblem, inferAnswerType, isYesNoAnswer } from '../../src/data/vqa-case.ts';

const ctx = { baseDir: '/data/slake', dataset: 'slake' };

test('yes/no answers are recognised whatever their case or trailing punctuation', () => {
  for (const a of ['Yes', 'no', ' YES ', 'No.']) assert.equal(isYesNoAnswer(a), true, a);
  for (const a of ['yes, left', 'None', 'not', '']) assert.equal(isYesNoAnswer(a), false, a);
});

test('inferAnswerType: yes/no, options and named alternatives are closed; the rest open', () => {
  assert.equal(inferAnswerType('Is there a mass?', 'Yes'), 'closed');
  assert.equal(inferAnswerType('Which lobe?', 'Left', ['Left', 'Right']), 'closed');
  assert.equal(inferAnswerType('Which is bigger in this image, heart or right lung?', 'Right lung'), 'closed');
  assert.equal(inferAnswerType('Which plane is the image scanned, transverse plane or coronal plane?', 'Transverse Plane'), 'closed');
  assert.equal(inferAnswerType('Where is the lesion?', 'Left lobe'), 'open');
  // An "or" question whose answer is not one of the named alternatives stays open.
  assert.equal(inferAnswerType('Is this a mass or a cyst?', 'abscess'), 'open');
  // Whole words only: "lung" must not match inside "lungs or heart".
  assert.equal(inferAnswerType('Are the lungs or heart abnormal?', 'lung'), 'open');
});

test('imageRefProblem accepts plain relative paths and rejects escapes', () => {
  for (const ok of ['images/synpic54610.jpg', 'a.png', 'images/sub/x.jpg', './images/a.jpg', '..foo.jpg']) {
    assert.equal(imageRefProblem(ok), null, ok);
  }
  const bad: Record<string, RegExp> = {
    '': /empty/,
    '../secret.jpg': /\.\./,
    'images/../../etc/passwd': /\.\./,
    '/etc/passwd': /absolute/,
    'C:/Windows/x.jpg': /absolute/,
    'images\\x.jpg': /forward slashes/,
    'file:images/x.jpg': /URL/,
    'https://example.org/x.jpg': /URL/,
    'images//x.jpg': /empty path segments/,
    'images/x.jpg\0.png': /NUL/,
  };
  for (const [ref, why] of Object.entries(bad)) {
    const problem = imageRefProblem(ref);
    assert.ok(problem && why.test(problem), `${JSON.stringify(ref)} -> ${problem}`);
  }
});

test('caseFromRecord maps SLAKE fields and resolves the image against the JSONL folder', () => {
  const r = caseFromRecord(
    {
      id: 'slake-0',
      image: 'images/xmlab1.jpg',
      question: 'What modality is used to take this image?',
      answer: 'MRI',
      answer_type: 'open',
      modality: 'MRI',
      organ: 'Abdomen',
      content_type: 'Modality',
      knowledge: false,
    },
    ctx,
  );
  assert.ok(r.ok);
  assert.deepEqual(r.value, {
    id: 'slake-0',
    imagePath: path.resolve('/data/slake/images/xmlab1.jpg'),
    question: 'What modality is used to take this image?',
    answer: 'MRI',
    answerType: 'open',
    dataset: 'slake',
    modality: 'MRI',
    organ: 'Abdomen',
    contentType: 'Modality',
    knowledge: false,
    extra: {},
  });
});

test('caseFromRecord keeps unknown fields in extra and invents no modality for VQA-RAD', () => {
  const r = caseFromRecord(
    {
      id: 'vqarad-0',
      image: 'images/a.jpg',
      question: 'Are regions of the brain infarcted?',
      answer: 'Yes',
      answer_type: 'closed',
      question_type: 'PRES',
      organ: 'head',
      phrasing: 'freeform',
      source: { qid: 0 },
    },
    { baseDir: '/d/vqa-rad', dataset: 'vqa-rad' },
  );
  assert.ok(r.ok);
  assert.equal(r.value.modality, undefined);
  assert.equal('modality' in r.value, false);
  assert.equal(r.value.questionType, 'PRES');
  assert.deepEqual(r.value.extra, { phrasing: 'freeform', source: { qid: 0 } });
});

test('caseFromRecord infers answerType when it is missing', () => {
  const closed = caseFromRecord({ id: 'a', image: 'i.jpg', question: 'Is it normal?', answer: 'no' }, ctx);
  const open = caseFromRecord({ id: 'b', image: 'i.jpg', question: 'Where is it?', answer: 'liver' }, ctx);
  const choice = caseFromRecord({ id: 'c', image: 'i.jpg', question: 'Which?', answer: 'B', options: ['A', 'B'] }, ctx);
  assert.ok(closed.ok && open.ok && choice.ok);
  assert.equal(closed.value.answerType, 'closed');
  assert.equal(open.value.answerType, 'open');
  assert.equal(choice.value.answerType, 'closed');
  assert.deepEqual(choice.value.options, ['A', 'B']);
});

test('caseFromRecord reports every problem of a record at once', () => {
  const r = caseFromRecord({ id: 7, image: '../x.jpg', answer: '', answer_type: 'yes', knowledge: 'false', modality: 3, options: ['a'] }, ctx);
  assert.ok(!r.ok);
  const all = r.problems.join('\n');
  for (const expected of [
    '"id" must be a string, got number',
    'missing required field "question"',
    '"answer" must not be empty',
    '".."',
    '"answer_type" must be "closed" or "open"',
    '"knowledge" must be a boolean, got string',
    '"modality" must be a string, got number',
    '"options" must list at least two choices',
  ]) {
    assert.ok(all.includes(expected), `expected "${expected}" in:\n${all}`);
  }
});

test('caseFromRecord rejects non-objects', () => {
  for (const v of [null, 3, 'x', [1, 2]]) {
    const r = caseFromRecord(v, ctx);
    assert.ok(!r.ok);
    assert.match(r.problems[0]!, /JSON object/);
  }
});

test('caseFromRecord flags a blank answer on an otherwise valid record as unlabelled', () => {
  const blank = caseFromRecord({ id: 'a', image: 'i.jpg', question: 'Does the picture contain liver?', answer: '' }, ctx);
  assert.ok(!blank.ok);
  assert.equal(blank.unlabelled, true);
  assert.deepEqual(blank.problems, ['"answer" must not be empty']);
  const missing = caseFromRecord({ id: 'a', image: 'i.jpg', question: 'Q?' }, ctx);
  assert.ok(!missing.ok);
  assert.equal(missing.unlabelled, undefined);
});

test('caseFromRecord refuses text that spells a special token, which would be read as a control token', () => {
  for (const [field, value] of [
    ['question', 'What is <image>?'],
    ['answer', 'yes<eos>'],
  ] as const) {
    const r = caseFromRecord({ id: 'a', image: 'i.jpg', question: 'Q?', answer: 'A', [field]: value }, ctx);
    assert.ok(!r.ok);
    assert.match(r.problems.join(), new RegExp(`"${field}" must not contain the reserved token`));
  }
  const opts = caseFromRecord({ id: 'a', image: 'i.jpg', question: 'Q?', answer: 'A', options: ['A', '<think>B'] }, ctx);
  assert.ok(!opts.ok);
  assert.match(opts.problems.join(), /"options" must not contain reserved tokens/);
});
