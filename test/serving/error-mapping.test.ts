import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiError, ERROR_CATALOGUE } from '../../src/errors.ts';
import { ImageInputError, type ImageInputErrorCode } from '../../src/preprocess/errors.ts';
import { InferenceTimeoutError, QueueFullError } from '../../src/runtime/batcher.ts';
import { PromptTooLongError } from '../../src/runtime/prompt.ts';
import { toApiError } from '../../src/serving/error-mapping.ts';

test('every image input error keeps its code and status', () => {
  const codes: ImageInputErrorCode[] = ['image_missing', 'image_too_large_bytes', 'image_too_large_pixels', 'unsupported_media_type', 'dicom_unsupported_transfer_syntax', 'dicom_unsupported_pixel_format', 'image_unreadable'];
  for (const code of codes) {
    const source = new ImageInputError(code, `about ${code}`);
    const mapped = toApiError(source);
    assert.equal(mapped.code, code);
    assert.equal(mapped.status, source.status);
    assert.equal(mapped.status, ERROR_CATALOGUE[code].status);
    assert.equal(mapped.detail, `about ${code}`);
  }
});

test('queue full → 503 with Retry-After; timeout → 504; unknown → 500 with a generic detail', () => {
  const full = toApiError(new QueueFullError(7));
  assert.equal(full.status, 503);
  assert.equal(full.headers['Retry-After'], '7');
  assert.equal(toApiError(new InferenceTimeoutError(1000)).status, 504);
  const unknown = toApiError(new TypeError('cannot read x of /opt/secret'));
  assert.equal(unknown.status, 500);
  assert.ok(!unknown.detail.includes('secret'));
  const api = ApiError.of('conflict', 'x');
  assert.equal(toApiError(api), api);
});

test('a prompt too long for the model → 400 context_length_exceeded with both token counts', () => {
  const mapped = toApiError(new PromptTooLongError('clinvqa-sft', 311, 92));
  assert.equal(mapped.status, 400);
  assert.equal(mapped.code, 'context_length_exceeded');
  assert.match(mapped.detail, /311 tokens long; model "clinvqa-sft" reads at most 92 tokens/);
  assert.deepEqual(mapped.extensions, { prompt_tokens: 311, max_prompt_tokens: 92 });
});
