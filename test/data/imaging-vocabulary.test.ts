import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mentions, regionsCompatible, sourceModality, sourceRegion } from '../../src/data/imaging-vocabulary.ts';

test('mentions: whole words, case-insensitive, plural and optional hyphen or space', () => {
  assert.equal(mentions('Chest X-rays show', 'x-ray'), true);
  assert.equal(mentions('an xray', 'x-ray'), true);
  assert.equal(mentions('an X ray', 'x-ray'), true);
  assert.equal(mentions('MRI of the brain', 'mr'), false);
  assert.equal(mentions('the forehead', 'head'), false);
  assert.equal(mentions('CT, of the head.', 'ct'), true);
  assert.equal(mentions('computed  tomography', 'computed tomography'), false); // one separator only
  assert.equal(mentions('a.b', 'a.b'), true); // regex characters in a term are literal
  assert.equal(mentions('axb', 'a.b'), false);
});

test('source values map to families and trace wording', () => {
  assert.deepEqual(sourceRegion('abd'), { family: 'abdomen', phrase: 'the abdomen' });
  assert.deepEqual(sourceRegion('Brain_Tissue'), { family: 'head', phrase: 'the brain' });
  assert.deepEqual(sourceRegion('Pelvic Cavity'), { family: 'pelvis', phrase: 'the pelvic cavity' });
  assert.deepEqual(sourceRegion('Upper_Abdomen'), { family: 'abdomen', phrase: 'the upper abdomen' });
  assert.deepEqual(sourceRegion('Knee'), { phrase: 'the knee' });
  assert.equal(sourceModality('X-Ray')?.canonical, 'X-ray');
  assert.equal(sourceModality('mri')?.canonical, 'MRI');
  assert.equal(sourceModality('CT')?.canonical, 'CT');
  assert.equal(sourceModality('PET'), undefined);
});

test('abdomen and pelvis are compatible regions; head and chest are not', () => {
  assert.equal(regionsCompatible('abdomen', 'pelvis'), true);
  assert.equal(regionsCompatible('pelvis', 'abdomen'), true);
  assert.equal(regionsCompatible('head', 'head'), true);
  assert.equal(regionsCompatible('head', 'chest'), false);
});
