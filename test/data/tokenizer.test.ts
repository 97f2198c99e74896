import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SPECIAL_TOKENS } from '../../src/data/special-tokens.ts';
import { buildTokenizerJson } from '../../src/data/tokenizer-train.ts';
import { VqaTokenizer } from '../../src/data/tokenizer.ts';
import { BYTE_TO_CHAR } from '../../src/data/byte-level.ts';

// The committed tokenizer, trained by scripts/train-tokenizer.ts on the VQA-RAD + SLAKE train splits.
const ASSET = 'assets/tokenizer.json';

const MEDICAL_TEXT = [
  'Is there a pneumothorax?',
  'A 5 mm × 3 mm hypodense lesion in segment VII of the liver.',
  'T2-weighted MRI, axial plane; FLAIR hyperintensity (left > right).',
  'Élargissement du médiastin — café-au-lait spots, naïve, Ø 12,5 cm, 37.5 °C, ±2 SD, α/β ratio',
  'Line one\nLine two\r\n\ttabbed   three spaces  ',
  "Dose: 0.5 mg/kg q8h; SpO2 92%; BP 120/80 mmHg; \"quoted\" and 'single' — don't, it's fine",
  '胸部X线 肺炎 🫁 emoji and CJK',
  '   leading and trailing spaces   ',
  '?!.,;:()[]{}<>',
  '<thinking> is not a special token, nor is <answer >',
];

test('the committed tokenizer loads with @huggingface/tokenizers, specials at ids 0..6', async () => {
  const tk = await VqaTokenizer.load(ASSET);
  assert.equal(tk.vocabSize, 2048);
  assert.deepEqual([tk.imageId, tk.thinkId, tk.thinkEndId, tk.answerId, tk.answerEndId, tk.eosId, tk.padId], [0, 1, 2, 3, 4, 5, 6]);
  for (const [i, token] of SPECIAL_TOKENS.entries()) {
    assert.deepEqual(tk.encode(token), [i], token);
    assert.equal(tk.decode([i]), token);
  }
});

test('encode/decode round-trips medical text exactly, unicode, whitespace and punctuation included', async () => {
  const tk = await VqaTokenizer.load(ASSET);
  for (const text of MEDICAL_TEXT) {
    const ids = tk.encode(text);
    assert.ok(
      ids.every((id) => Number.isInteger(id) && id >= SPECIAL_TOKENS.length && id < tk.vocabSize),
      text,
    );
    assert.equal(tk.decode(ids), text);
  }
  assert.deepEqual(tk.encode(''), []);
  assert.equal(tk.decode([]), '');
});

test('a completion with special tokens encodes them as single ids and decodes back', async () => {
  const tk = await VqaTokenizer.load(ASSET);
  const completion = '<think>CT of the abdomen; the question asks about an abnormality.</think><answer>yes</answer><eos>';
  const ids = tk.encode(completion);
  assert.equal(ids[0], tk.thinkId);
  assert.equal(ids.at(-1), tk.eosId);
  assert.deepEqual(
    ids.filter((id) => id < SPECIAL_TOKENS.length),
    [tk.thinkId, tk.thinkEndId, tk.answerId, tk.answerEndId, tk.eosId],
  );
  assert.equal(tk.decode(ids), completion);
  assert.equal(tk.decode(ids, { skipSpecial: true }), 'CT of the abdomen; the question asks about an abnormality.yes');
  // Padding and the image placeholder are ordinary ids too.
  assert.equal(tk.decode([tk.imageId, ...tk.encode('Is it normal?'), tk.padId, tk.padId]), '<image>Is it normal?<pad><pad>');
});

test('the trained vocabulary is medical: frequent words are one or two tokens', async () => {
  const tk = await VqaTokenizer.load(ASSET);
  for (const word of [' pneumothorax', ' abdomen', ' lung', ' abnormality', ' hemorrhage', ' modality', ' question']) {
    const n = tk.encode(word).length;
    assert.ok(n <= 2, `${JSON.stringify(word)} -> ${tk.tokenize(word).join('|')}`);
  }
  const question = 'Is there evidence of a pneumothorax in the left lung?';
  assert.ok(tk.encode(question).length <= 14, tk.tokenize(question).join('|'));
});

test('decode rejects ids outside the vocabulary instead of dropping them', async () => {
  const tk = await VqaTokenizer.load(ASSET);
  assert.throws(() => tk.decode([tk.vocabSize]), RangeError);
  assert.throws(() => tk.decode([-1]), RangeError);
  assert.throws(() => tk.decode([1.5]), RangeError);
});

test('a tokenizer.json without the special tokens is refused', () => {
  const json = buildTokenizerJson([...SPECIAL_TOKENS.slice(0, 5), ...BYTE_TO_CHAR], [], SPECIAL_TOKENS.slice(0, 5));
  assert.throws(() => new VqaTokenizer(json), /lacks the special token <eos>/);
});
