import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadVqaJsonl } from '../../src/data/jsonl-loader.ts';
import { VqaTokenizer } from '../../src/data/tokenizer.ts';
import { findLongQuestions, longQuestionsWarning } from '../../src/jobs/long-questions.ts';
import { normalizeQuestion } from '../../src/runtime/prompt.ts';

test('questions over the limit are found by their JSONL line and named in a warning; none over it, no warning', async () => {
  const tk = await VqaTokenizer.load('models/clinvqa-sft/tokenizer.json');
  const loaded = await loadVqaJsonl('test/fixtures/vqa/slake.jsonl');
  const lengths = loaded.cases.map((c) => tk.encode(normalizeQuestion(c.question)).length);
  const longest = Math.max(...lengths);
  const none = findLongQuestions(tk, loaded.cases, loaded.caseLines, longest);
  assert.deepEqual(none.lines, []);
  assert.equal(longQuestionsWarning(none, longest), undefined);
  const limit = longest - 1;
  const found = findLongQuestions(tk, loaded.cases, loaded.caseLines, limit);
  const expected = loaded.caseLines.filter((_, i) => lengths[i]! > limit);
  assert.ok(expected.length > 0);
  assert.deepEqual(found.lines, expected);
  assert.equal(found.longest, longest);
  assert.match(
    longQuestionsWarning(found, limit)!,
    new RegExp(
      `^${expected.length} question\\(s\\) are longer than the base model reads \\(${limit} tokens; the longest has ${longest}\\): lines ${expected.join(', ')}\\.`,
    ),
  );
});
