import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError } from '../../src/errors.ts';
import { extractQuestionAndImage, toVqaInput, type ChatMessage } from '../../src/serving/chat.service.ts';

const url = `data:image/png;base64,${Buffer.from('img-bytes').toString('base64')}`;
const code = (c: string) => (e: unknown) => e instanceof ApiError && e.code === c;

test("question = the user message's text parts joined; image = its image_url part; empty messages of other roles pass", () => {
  const messages: ChatMessage[] = [
    { role: 'system', content: '' },
    {
      role: 'user',
      content: [
        { type: 'text', text: 'Is the' },
        { type: 'image_url', image_url: { url } },
        { type: 'text', text: 'liver enlarged?' },
      ],
    },
    { role: 'assistant', content: null },
  ];
  const { question, image } = extractQuestionAndImage(messages);
  assert.equal(question, 'Is the\nliver enlarged?');
  assert.equal(Buffer.from(image).toString(), 'img-bytes');
});

test('what the model would not see is refused, naming where it is', () => {
  const user: ChatMessage = {
    role: 'user',
    content: [
      { type: 'image_url', image_url: { url } },
      { type: 'text', text: 'q' },
    ],
  };
  const at = (pointer: string) => (e: unknown) =>
    e instanceof ApiError && e.code === 'unsupported_parameter' && (e.extensions.errors as { path: string }[])[0]!.path === pointer;
  assert.throws(() => extractQuestionAndImage([{ role: 'system', content: 'be brief' }, user]), at('/messages/0'));
  assert.throws(() => extractQuestionAndImage([user, { role: 'assistant', content: 'yes' }]), at('/messages/1'));
  assert.throws(() => extractQuestionAndImage([{ role: 'user', content: 'old' }, user]), at('/messages/0'));
  assert.throws(
    () =>
      extractQuestionAndImage([
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url } },
            { type: 'image_url', image_url: { url } },
            { type: 'text', text: 'q' },
          ],
        },
      ]),
    at('/messages/0/content/1'),
  );
  assert.throws(() => toVqaInput({ messages: [user], max_tokens: 5, max_completion_tokens: 6 }, undefined), at('/max_tokens'));
});

test('missing pieces are specific 400s', () => {
  assert.throws(() => extractQuestionAndImage([{ role: 'assistant', content: 'x' }]), code('invalid_request'));
  assert.throws(() => extractQuestionAndImage([{ role: 'user', content: 'q' }]), code('image_missing'));
  assert.throws(
    () =>
      extractQuestionAndImage([
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: 'http://x/y.png' } },
            { type: 'text', text: 'q' },
          ],
        },
      ]),
    code('image_url_not_supported'),
  );
  assert.throws(() => extractQuestionAndImage([{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }]), code('question_empty'));
});

test('OpenAI parameters map onto generation parameters; model "auto" leaves the choice to the A/B table', () => {
  const messages: ChatMessage[] = [
    {
      role: 'user',
      content: [
        { type: 'image_url', image_url: { url } },
        { type: 'text', text: 'q' },
      ],
    },
  ];
  const input = toVqaInput({ model: 'auto', messages, temperature: 0.5, top_p: 0.9, max_tokens: 20, max_completion_tokens: 20, seed: 3 }, 'ward-1');
  assert.equal(input.model, undefined);
  assert.deepEqual([input.temperature, input.topP, input.maxTokens, input.seed, input.clientId], [0.5, 0.9, 20, 3, 'ward-1']);
  assert.equal(toVqaInput({ model: 'clinvqa-sft', messages }, undefined).model, 'clinvqa-sft');
});
