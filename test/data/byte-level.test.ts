import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BYTE_TO_CHAR, byteLevelPieces, splitPieces, toByteChars } from '../../src/data/byte-level.ts';
import { Tokenizer } from '@huggingface/tokenizers';
import { SPECIAL_TOKENS } from '../../src/data/special-tokens.ts';
import { buildTokenizerJson } from '../../src/data/tokenizer-train.ts';

test('BYTE_TO_CHAR is GPT-2 byte-to-unicode: 256 distinct single characters', () => {
  assert.equal(new Set(BYTE_TO_CHAR).size, 256);
  assert.ok(BYTE_TO_CHAR.every((c) => c.length === 1));
  assert.equal(BYTE_TO_CHAR[0x41], 'A');
  assert.equal(BYTE_TO_CHAR[0x20], 'Ġ');
  assert.equal(BYTE_TO_CHAR[0x0a], 'Ċ');
  assert.equal(BYTE_TO_CHAR[0x00], '\u0100');
  assert.equal(BYTE_TO_CHAR[0xad], '\u0143');
});

test('pieces: words keep one leading space, numbers and punctuation split off, bytes spelled', () => {
  assert.deepEqual(splitPieces("Is there a 5 mm lesion? It's T2-weighted."), [
    'Is',
    ' there',
    ' a',
    ' 5',
    ' mm',
    ' lesion',
    '?',
    ' It',
    "'s",
    ' T',
    '2',
    '-',
    'weighted',
    '.',
  ]);
  assert.equal(toByteChars(' lung'), 'Ġlung');
  assert.equal(toByteChars('×'), 'ÃĹ');
  assert.deepEqual(byteLevelPieces('a  b\n'), ['a', 'Ġ', 'Ġb', 'Ċ']);
});

test('pieces agree with @huggingface/tokenizers ByteLevel pre-tokenization', () => {
  // The trainer must cut text exactly where the run-time library does, or learned merges would
  // be applied to different pieces than they were learned on.
  // The pre-tokenizer exactly as the library builds it from the tokenizer.json we write.
  const runtime = new Tokenizer(buildTokenizerJson([...SPECIAL_TOKENS, ...BYTE_TO_CHAR], []), {}).pre_tokenizer!;
  for (const text of ['5 mm × 3 mm', 'Élan  vital\n\tdone ', "don't  stop 2024-01-01", '胸部 🫁!', '  lead', 'x\r\n\r\ny']) {
    assert.deepEqual(byteLevelPieces(text), runtime.pre_tokenize_text(text), text);
  }
});
