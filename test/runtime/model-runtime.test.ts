// The shipped SFT package end to end through the serving runtime: verified load, sharp
// preprocessing of a real fixture image, KV-cache generation, and <think>/<answer> parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { loadRuntime, type OnnxModelRuntime } from '../../src/runtime/model-runtime.ts';
import { preprocessImage } from '../../src/preprocess/image.ts';
import { PromptTooLongError } from '../../src/runtime/prompt.ts';
import type { GenerateParams } from '../../src/runtime/types.ts';

let rt: OnnxModelRuntime;
let patches: Float32Array;
const GREEDY: GenerateParams = { temperature: 0, topP: 1, maxTokens: 64 };

test.before(async () => {
  rt = await loadRuntime('models/clinvqa-sft', { executionProviders: ['cpu'] });
  const ic = rt.imageConfig;
  const img = await preprocessImage(await readFile('test/fixtures/vqa/images/xmlab119.jpg'), {
    imageSize: ic.imageSize,
    patchSize: ic.patchSize,
    channels: 3,
    mean: ic.mean,
    std: ic.std,
    maxInputPixels: 50_000_000,
    maxBytes: 10_000_000,
  });
  patches = img.patches;
});
test.after(() => rt.dispose());

test('the shipped SFT model answers a real case with a well-formed, grounded trace', async () => {
  // SLAKE xmlab119 is a chest CT.
  const [r] = await rt.generateBatch([{ patches, question: 'What modality is used to take this image?', params: GREEDY }]);
  assert.equal(r.finishReason, 'stop');
  assert.match(r.text, /^<think>.+<\/think><answer>.+<\/answer>$/);
  assert.match(r.reasoning, /\bCT\b/);
  assert.ok(r.answer.length > 0);
  assert.equal(r.completionTokens > 5 && r.promptTokens > 3, true);
});

test('a batch answers each request as it would alone; seeds make sampling reproducible', async () => {
  const qs = ['Is this a CT image?', 'Which organ is abnormal?', 'Does the lung look healthy?'];
  const batched = await rt.generateBatch(qs.map((question) => ({ patches, question, params: GREEDY })));
  for (const [i, question] of qs.entries()) {
    const [alone] = await rt.generateBatch([{ patches, question, params: GREEDY }]);
    assert.equal(alone.text, batched[i].text);
  }
  const hot = { temperature: 1.2, topP: 0.95, maxTokens: 64, seed: 11 };
  const a = await rt.generateBatch([{ patches, question: qs[1], params: hot }]);
  const b = await rt.generateBatch([{ patches, question: qs[1], params: hot }]);
  assert.equal(a[0].text, b[0].text);
});

test('max_tokens cuts the completion and reports finishReason length', async () => {
  const [r] = await rt.generateBatch([{ patches, question: 'Where is the abnormality?', params: { ...GREEDY, maxTokens: 4 } }]);
  assert.equal(r.completionTokens, 4);
  assert.equal(r.finishReason, 'length');
});

test('a question longer than the context is refused with both token counts, never cut', async () => {
  // The 1,722-character question that was once answered from its last 92 tokens.
  const long = `${'Patient history: intermittent cough, mild fever, no travel, non-smoker, ex-athlete. '.repeat(20)}Is there a fracture?`;
  const fits = 'Is there a fracture?';
  assert.ok(rt.maxPromptTokens > 0);
  assert.throws(
    () => rt.checkPrompt(long),
    (e: unknown) =>
      e instanceof PromptTooLongError && e.maxPromptTokens === rt.maxPromptTokens && e.promptTokens > rt.maxPromptTokens && e.model === 'clinvqa-sft',
  );
  await assert.rejects(rt.generateBatch([{ patches, question: long, params: GREEDY }]), PromptTooLongError);
  // Offline evaluation may ask to read it by its end, as the trainers do; only then is it cut.
  const [end] = await rt.generateBatch([{ patches, question: long, params: GREEDY, readQuestionEnd: true }]);
  assert.equal(end.promptTokens, rt.maxPromptTokens);
  // A question that fits is counted as the prompt the model reads.
  const [r] = await rt.generateBatch([{ patches, question: fits, params: GREEDY }]);
  assert.equal(rt.checkPrompt(fits), r.promptTokens);
  // Exactly at the limit still fits.
  const words = Array.from({ length: 400 }, () => 'x').join(' ');
  const ids = rt.tokenizer.encode(words);
  const atLimit = rt.tokenizer.decode(ids.slice(0, rt.maxPromptTokens));
  assert.ok(rt.checkPrompt(atLimit) <= rt.maxPromptTokens);
});
