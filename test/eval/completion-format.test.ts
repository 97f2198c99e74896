import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countWords, extractAnswer, extractThink, isWellFormatted } from '../../src/eval/completion-format.ts';

test('isWellFormatted accepts exactly one think block then one answer block', () => {
  assert.equal(isWellFormatted('<think>CT of the abdomen.</think><answer>yes</answer>'), true);
  assert.equal(isWellFormatted('  <think>a</think>\n<answer>b</answer>\n'), true);
  // The decoder may leave end tokens behind when specials are kept in the decoded text.
  assert.equal(isWellFormatted('<think>a</think><answer>b</answer><eos><pad><pad>'), true);
});

test('isWellFormatted rejects anything else', () => {
  const bad = [
    'yes',
    '<answer>yes</answer>',
    '<think>a</think>',
    '<answer>yes</answer><think>a</think>',
    '<think>a</think><answer>yes</answer><answer>no</answer>',
    '<think>a</think><think>b</think><answer>yes</answer>',
    '<think>a <think>b</think><answer>yes</answer>',
    '<think>a</think>so<answer>yes</answer>',
    '<think>a</think><answer>yes</answer> trailing words',
    'preamble <think>a</think><answer>yes</answer>',
    '<think>a</think><answer>yes', // cut at max_completion_length
    '<think>a</think><answer>yes</answer><eos>more',
  ];
  for (const c of bad) assert.equal(isWellFormatted(c), false, c);
});

test('extractThink and extractAnswer', () => {
  assert.equal(extractThink('<think> MRI of the brain. </think><answer>yes</answer>'), 'MRI of the brain.');
  assert.equal(extractThink('<answer>yes</answer>'), null);
  assert.equal(extractAnswer('<think>t</think><answer> Left kidney </answer>'), 'Left kidney');
  // The last complete answer block is the one the model committed to.
  assert.equal(extractAnswer('<think>t</think><answer>yes</answer><answer>no</answer>'), 'no');
  // An untagged completion is a bare answer (baselines prompted without the format).
  assert.equal(extractAnswer('  Yes<eos>'), 'Yes');
  // Tagged but never closed an answer block: no answer.
  assert.equal(extractAnswer('<think>t</think><answer>ye'), null);
  assert.equal(extractAnswer('<think>t</think>'), null);
});

test('countWords', () => {
  assert.equal(countWords(''), 0);
  assert.equal(countWords('  \n '), 0);
  assert.equal(countWords('CT of  the\nabdomen.'), 4);
});
