import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildGroundedTrace, formatCompletion, groundingTerms, isTraceGrounded, parseCompletion } from '../../src/data/grounded-trace.ts';
import { loadVqaUnion } from '../../src/data/jsonl-loader.ts';
import { MODALITY_FAMILIES, REGION_FAMILIES, mentions } from '../../src/data/imaging-vocabulary.ts';

test('SLAKE: the trace names modality, region and what the question asks about', () => {
  assert.equal(
    buildGroundedTrace({ modality: 'CT', organ: 'Abdomen', contentType: 'Abnormality' }),
    'CT of the abdomen; the question asks about an abnormality.',
  );
  assert.equal(
    buildGroundedTrace({ modality: 'X-Ray', organ: 'Lung', contentType: 'Position' }),
    'X-ray of the lungs; the question asks about the location of a structure or finding.',
  );
  assert.equal(
    buildGroundedTrace({ modality: 'MRI', organ: 'Brain_Tissue', contentType: 'KG' }),
    'MRI of the brain; the question asks about medical knowledge of the organs shown.',
  );
  assert.equal(
    buildGroundedTrace({ modality: 'CT', organ: 'Pelvic Cavity', contentType: 'Quantity' }),
    'CT of the pelvic cavity; the question asks how many structures are seen.',
  );
});

test('VQA-RAD: no modality in the metadata, so the trace claims none', () => {
  const trace = buildGroundedTrace({ organ: 'abd', questionType: 'PRES' });
  assert.equal(trace, 'An image of the abdomen; the question asks whether a finding is present.');
  assert.ok(!MODALITY_FAMILIES.some((f) => f.terms.some((t) => mentions(trace, t))), trace);
  // Two categories on one row are both said, once each; the source's misspellings are understood.
  assert.equal(
    buildGroundedTrace({ organ: 'head', questionType: 'POS, PRES' }),
    'An image of the head; the question asks about the location of a structure or finding and whether a finding is present.',
  );
  assert.equal(buildGroundedTrace({ organ: 'chest', questionType: 'PRSE' }), buildGroundedTrace({ organ: 'chest', questionType: 'PRES' }));
  assert.equal(buildGroundedTrace({ organ: 'chest', questionType: 'ATRIB' }), buildGroundedTrace({ organ: 'chest', questionType: 'ATTRIB' }));
});

test('missing or unfamiliar metadata gives a weaker but still true trace', () => {
  assert.equal(buildGroundedTrace({}), 'A medical image; the question asks about the image.');
  assert.equal(buildGroundedTrace({ modality: 'CT' }), 'A CT image; the question asks about the image.');
  assert.equal(buildGroundedTrace({ organ: 'Left_Knee', contentType: 'Texture' }), 'An image of the left knee; the question asks about the image.');
  assert.equal(buildGroundedTrace({ modality: 'PET', organ: 'neck' }), 'PET of the neck; the question asks about the image.');
});

test('every fixture case gets a grounded trace that never contains its answer text by construction', async () => {
  const { cases } = await loadVqaUnion(['test/fixtures/vqa/vqa-rad.jsonl', 'test/fixtures/vqa/slake.jsonl']);
  assert.equal(cases.length, 48);
  for (const c of cases) {
    const trace = buildGroundedTrace(c);
    assert.ok(isTraceGrounded(trace, c), `${c.id}: ${trace}`);
    // The builder only sees metadata: swapping the answer cannot change the trace.
    assert.equal(buildGroundedTrace({ ...c, answer: 'something else' } as typeof c), trace);
  }
  // A trace built for one region is not grounded for another.
  const chestCt = cases.find((c) => c.modality === 'CT' && c.organ === 'Lung')!;
  const abdCt = cases.find((c) => c.modality === 'CT' && c.organ === 'Abdomen')!;
  assert.equal(isTraceGrounded(buildGroundedTrace(chestCt), abdCt), false);
  assert.equal(isTraceGrounded(buildGroundedTrace(abdCt), chestCt), false);
});

test('isTraceGrounded: synonyms count, the wrong modality or an incompatible extra region fails', () => {
  const abdCt = { modality: 'CT', organ: 'Abdomen' };
  assert.equal(isTraceGrounded('Computed tomography of the abdominal cavity.', abdCt), true);
  assert.equal(isTraceGrounded('CT scans of the abdomen and pelvis.', abdCt), true); // compatible regions
  assert.equal(isTraceGrounded('CT of the chest.', abdCt), false);
  assert.equal(isTraceGrounded('CT of the chest and abdomen.', abdCt), false);
  assert.equal(isTraceGrounded('MRI of the abdomen.', abdCt), false);
  assert.equal(isTraceGrounded('CT and MRI of the abdomen.', abdCt), false);
  assert.equal(isTraceGrounded('An image of the abdomen.', abdCt), false); // modality missing
  assert.equal(isTraceGrounded('The question asks about an abnormality.', {}), true); // nothing to check

  const brainMr = { modality: 'MRI', organ: 'Brain' };
  assert.equal(isTraceGrounded('MR of the brain', brainMr), true);
  assert.equal(isTraceGrounded('MRI of the forehead region', brainMr), false); // "head" inside a word is not a mention
  assert.equal(isTraceGrounded('Magnetic resonance image of the skull.', brainMr), true);

  const radChest = { organ: 'chest' };
  assert.equal(isTraceGrounded('An image of the thorax.', radChest), true);
  assert.equal(isTraceGrounded('X-rays of the lungs.', radChest), true); // any modality: VQA-RAD has none
  assert.equal(isTraceGrounded('An image of the head.', radChest), false);
});

test('groundingTerms: known families by canonical name, unfamiliar values by their own words', () => {
  assert.deepEqual(
    groundingTerms({ modality: 'X-Ray', organ: 'Lung' }).map((t) => [t.kind, t.canonical]),
    [
      ['modality', 'X-ray'],
      ['region', 'chest'],
    ],
  );
  assert.deepEqual(groundingTerms({ modality: 'PET', organ: 'Left_Knee' }), [
    { kind: 'modality', canonical: 'PET', synonyms: ['pet'] },
    { kind: 'region', canonical: 'left knee', synonyms: ['left knee'] },
  ]);
  assert.deepEqual(groundingTerms({}), []);
  assert.ok(REGION_FAMILIES.find((f) => f.canonical === 'abdomen')!.terms.includes('abd'));
});

test('formatCompletion writes one think block then one answer block and refuses special tokens inside', () => {
  assert.equal(
    formatCompletion(' CT of the abdomen; the question asks about an abnormality. ', ' yes '),
    '<think>CT of the abdomen; the question asks about an abnormality.</think><answer>yes</answer>',
  );
  assert.throws(() => formatCompletion('a</think>b', 'yes'), /trace must not contain the special token <\/think>/);
  assert.throws(() => formatCompletion('trace', 'yes<eos>'), /answer must not contain the special token <eos>/);
});

test('parseCompletion: well-formed completions, with trailing <eos>/<pad> and whitespace', () => {
  const text = formatCompletion('MRI of the brain; the question asks about the imaging plane.', 'Axial');
  assert.deepEqual(parseCompletion(text), {
    reasoning: 'MRI of the brain; the question asks about the imaging plane.',
    answer: 'Axial',
    wellFormed: true,
  });
  assert.deepEqual(parseCompletion(`  <think> r </think>\n<answer> no </answer> <eos><pad><pad>`), { reasoning: 'r', answer: 'no', wellFormed: true });
});

test('parseCompletion: malformed completions still give a best-effort answer, marked not well formed', () => {
  const cases: Array<[string, string, string]> = [
    // text, reasoning, answer
    ['yes', '', 'yes'],
    ['<answer>yes</answer>', '', 'yes'],
    ['<think>CT of the chest</think>left lung', 'CT of the chest', 'left lung'],
    ['<think>CT of the chest<answer>no</answer>', 'CT of the chest', 'no'],
    ['<think>CT of the chest</think><answer>no', 'CT of the chest', 'no'],
    ['<think>a</think><answer>b</answer><answer>c</answer>', 'a', 'b'],
    ['<think>a</think><think>b</think><answer>c</answer>', 'a', 'c'],
    ['<think>still thinking', 'still thinking', ''],
    ['<answer>yes</answer> trailing words', '', 'yes'],
    ['', '', ''],
  ];
  for (const [text, reasoning, answer] of cases) {
    assert.deepEqual(parseCompletion(text), { reasoning, answer, wellFormed: false }, JSON.stringify(text));
  }
});
