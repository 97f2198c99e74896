import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/errors.ts';
import { extractQuestionAndImage, toVqaInput, type ChatMessage } from '../../src/serving/chat.service.ts';

const url = `data:image/png;base64,${Buffer.from('img-bytes').toString('base64')}`;
const code = (c: string) => (e: unknown) => e instanceof ApiError && e.code === c;

test('question = text of the last user message (parts joined); image = last image_url of user messages', () => {
  const messages: ChatMessage[] = [
    { role: 'system', content: 'be brief' },
    { role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'old' }] },
    { role: 'user', content: [{ type: 'text', text: 'Is the' }, { type: 'text', text: 'liver enlarged?' }] },
  ];
  const { question, image } = extractQuestionAndImage(messages);
  assert.equal(question, 'Is the\nliver enlarged?');
  assert.equal(Buffer.from(image).toString(), 'img-bytes');
});

test('missing pieces are specific 400s', () => {
  assert.throws(() => extractQuestionAndImage([{ role: 'assistant', content: 'x' }]), code('invalid_request'));
  assert.throws(() => extractQuestionAndImage([{ role: 'user', content: 'q' }]), code('image_missing'));
  assert.throws(() => extractQuestionAndImage([{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x/y.png' } }, { type: 'text', text: 'q' }] }]), code('image_url_not_supported'));
  assert.throws(() => extractQuestionAndImage([{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }]), code('question_empty'));
});

test('OpenAI parameters map onto generation parameters; model "auto" leaves the choice to the A/B table', () => {
  const messages: ChatMessage[] = [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'q' }] }];
  const input = toVqaInput({ model: 'auto', messages, temperature: 0.5, top_p: 0.9, max_tokens: 10, max_completion_tokens: 20, seed: 3 }, 'ward-1');
  assert.equal(input.model, undefined);
  assert.deepEqual([input.temperature, input.topP, input.maxTokens, input.seed, input.clientId], [0.5, 0.9, 20, 3, 'ward-1']);
  assert.equal(toVqaInput({ model: 'clinvqa-sft', messages }, undefined).model, 'clinvqa-sft');
});

test('system and developer messages become the system prompt; none means none', () => {
  const user: ChatMessage = { role: 'user', content: [{ type: 'image_url', image_url: { url } }, { type: 'text', text: 'q?' }] };
  const input = toVqaInput({ messages: [{ role: 'system', content: 'You are a radiologist.' }, { role: 'developer', content: [{ type: 'text', text: 'Answer in <answer></answer>.' }] }, user] }, undefined);
  assert.equal(input.systemPrompt, 'You are a radiologist.\nAnswer in <answer></answer>.');
  assert.equal(toVqaInput({ messages: [user] }, undefined).systemPrompt, undefined);
});
