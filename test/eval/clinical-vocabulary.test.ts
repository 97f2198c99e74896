import { test } from 'node:test';
import assert from 'node:assert/strict';
import { modalitiesMentioned, modalityOfLabel, regionOfLabel, regionsMentioned, traceMetadataGrounding } from '../../src/eval/clinical-vocabulary.ts';
import { buildGroundedTrace } from '../../src/data/grounded-trace.ts';

test('dataset labels map to modalities and body regions', () => {
  assert.equal(modalityOfLabel('CT'), 'ct');
  assert.equal(modalityOfLabel('MRI'), 'mri');
  assert.equal(modalityOfLabel('X-Ray'), 'xray');
  assert.equal(modalityOfLabel('US'), 'ultrasound');
  assert.equal(modalityOfLabel('Knee'), null);
  assert.equal(regionOfLabel('abd'), 'abdomen');
  assert.equal(regionOfLabel('head'), 'head');
  assert.equal(regionOfLabel('Lung'), 'chest');
  assert.equal(regionOfLabel('Brain_Face'), 'head');
  assert.equal(regionOfLabel('Chest_heart'), 'chest');
  assert.equal(regionOfLabel('Pelvic Cavity'), 'pelvis');
  assert.equal(regionOfLabel('Neck'), 'neck');
});

test('mentions: negation, and longer terms win over the words inside them', () => {
  assert.deepEqual([...modalitiesMentioned('This is not an MRI; it is a CT.').affirmed], ['ct']);
  assert.deepEqual([...modalitiesMentioned('This is not an MRI').all], ['mri']);
  assert.deepEqual([...regionsMentioned('no mass in the liver').affirmed], ['abdomen']);
  assert.deepEqual([...regionsMentioned('fracture of the left femoral head').affirmed], ['pelvis']);
  assert.deepEqual([...regionsMentioned('mass in the head of the pancreas').affirmed], ['abdomen']);
});

test('trace grounding against metadata: SLAKE (modality and organ)', () => {
  const ctLung = { modality: 'CT', organ: 'Lung' };
  assert.equal(traceMetadataGrounding('CT of the lungs; a nodule.', ctLung).grounded, true);
  assert.equal(traceMetadataGrounding('Axial computed tomography of the chest.', ctLung).grounded, true);
  // missing the modality
  const noModality = traceMetadataGrounding('Image of the lungs.', ctLung);
  assert.equal(noModality.grounded, false);
  assert.equal(noModality.mentionsModality, false);
  // names a second modality
  assert.equal(traceMetadataGrounding('CT or MRI of the chest.', ctLung).contradictsModality, true);
  // names an incompatible region
  const wrongRegion = traceMetadataGrounding('CT of the chest and brain.', ctLung);
  assert.equal(wrongRegion.contradictsRegion, true);
  assert.equal(wrongRegion.grounded, false);
  // chest and upper abdomen share an image
  assert.equal(traceMetadataGrounding('CT of the chest showing the liver dome.', ctLung).grounded, true);
  // only negated
  assert.equal(traceMetadataGrounding('Not a CT of the lungs.', ctLung).grounded, false);
});

test('trace grounding: VQA-RAD has an organ but no modality; cases without labels are not applicable', () => {
  const head = { organ: 'head' };
  const g = traceMetadataGrounding('An image of the head.', head);
  assert.equal(g.applicable, true);
  assert.equal(g.mentionsModality, null);
  assert.equal(g.grounded, true);
  // naming a modality is neither required nor penalised without a modality label
  assert.equal(traceMetadataGrounding('MRI of the brain.', head).grounded, true);
  assert.equal(traceMetadataGrounding('CT of the abdomen.', head).grounded, false);
  const none = traceMetadataGrounding('CT of the abdomen.', {});
  assert.equal(none.applicable, false);
  assert.equal(none.grounded, false);
  // unrecognised labels must appear as their own words
  assert.equal(traceMetadataGrounding('Radiograph of the knee.', { organ: 'Knee' }).grounded, true);
  assert.equal(traceMetadataGrounding('Radiograph.', { organ: 'Knee' }).grounded, false);
});

test('every SFT grounded trace (data layer) is grounded here, for each label combination in the datasets', () => {
  const combos: { modality?: string; organ: string }[] = [
    { modality: 'MRI', organ: 'Abdomen' },
    { modality: 'CT', organ: 'Lung' },
    { modality: 'CT', organ: 'Abdomen' },
    { modality: 'X-Ray', organ: 'Lung' },
    { modality: 'CT', organ: 'Chest_heart' },
    { modality: 'CT', organ: 'Chest_lung' },
    { modality: 'MRI', organ: 'Lung' },
    { modality: 'CT', organ: 'Brain_Tissue' },
    { modality: 'CT', organ: 'Brain_Face' },
    { modality: 'MRI', organ: 'Brain' },
    { modality: 'CT', organ: 'Neck' },
    { modality: 'MRI', organ: 'Brain_Tissue' },
    { modality: 'CT', organ: 'Chest_mediastinal' },
    { modality: 'CT', organ: 'Pelvic Cavity' },
    { organ: 'head' },
    { organ: 'chest' },
    { organ: 'abd' },
  ];
  for (const meta of combos) {
    for (const contentType of ['Organ', 'Modality', 'Abnormality', 'KG', 'Position']) {
      const trace = buildGroundedTrace({ ...meta, contentType });
      assert.equal(traceMetadataGrounding(trace, meta).grounded, true, trace);
    }
  }
});
