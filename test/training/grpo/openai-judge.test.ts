import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JudgeResponseError, chatCompletionsUrl, defaultJudgeMessages, parseJudgeVerdict } from '../../../src/training/grpo/openai-judge.ts';

test('verdict parsing: leading digit, quoted or bracketed, or a single standalone digit', () => {
  assert.equal(parseJudgeVerdict('1'), 1);
  assert.equal(parseJudgeVerdict('0'), 0);
  assert.equal(parseJudgeVerdict(' "1" '), 1);
  assert.equal(parseJudgeVerdict('**0**'), 0);
  assert.equal(parseJudgeVerdict('[1]'), 1);
  assert.equal(parseJudgeVerdict('1. The reasoning is consistent.'), 1);
  assert.equal(parseJudgeVerdict('Verdict: 0'), 0);
  assert.equal(parseJudgeVerdict('<think>Is it 1 or 0? The CT says chest.</think>\n1'), 1);
});

test('verdict parsing refuses to guess', () => {
  for (const reply of ['', 'yes', '1 or 0', '10', '0.5', 'score 1 out of 0']) {
    assert.throws(() => parseJudgeVerdict(reply), JudgeResponseError, reply);
  }
});

test('chat completions URL from a server root or a /v1 root', () => {
  assert.equal(chatCompletionsUrl('http://127.0.0.1:8000'), 'http://127.0.0.1:8000/v1/chat/completions');
  assert.equal(chatCompletionsUrl('http://127.0.0.1:8000/v1/'), 'http://127.0.0.1:8000/v1/chat/completions');
});

test('default prompt carries question and metadata; the gold answer only when asked', () => {
  const c = { question: 'Is there a mass?', answer: 'Yes', answerType: 'closed' as const, modality: 'CT', organ: 'Lung' };
  const [system, user] = defaultJudgeMessages('<think>t</think><answer>yes</answer>', c);
  assert.equal(system!.role, 'system');
  assert.match(user!.content, /Question: Is there a mass\?/);
  assert.match(user!.content, /Image modality: CT/);
  assert.match(user!.content, /Body region \/ organ: Lung/);
  assert.doesNotMatch(user!.content, /Reference answer/);
  assert.match(defaultJudgeMessages('x', c, true)[1]!.content, /Reference answer: Yes/);
});
