// One translation of errors to ApiErrors, and a check that no other module grows its own.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import multer from 'multer';
import { ApiError, ERROR_CATALOGUE } from '../../src/errors.ts';
import { ImageInputError, type ImageInputErrorCode } from '../../src/preprocess/errors.ts';
import { FeedbackInputError, ResponseNotFoundError } from '../../src/feedback/feedback-store.ts';
import { JobFinishedError, UnknownBaseModelError } from '../../src/jobs/job-queue.ts';
import { RequestProblem } from '../../src/jobs/upload-validation.ts';
import { AbTableConflictError, AbTableError } from '../../src/routing/ab-table.ts';
import { InferenceTimeoutError, QueueFullError } from '../../src/runtime/batcher.ts';
import { PromptTooLongError } from '../../src/runtime/prompt.ts';
import { toApiError } from '../../src/http/error-translation.ts';

test('every image input error keeps its code and status', () => {
  const codes: ImageInputErrorCode[] = [
    'image_missing',
    'image_too_large_bytes',
    'image_too_large_pixels',
    'unsupported_media_type',
    'dicom_unsupported_transfer_syntax',
    'dicom_unsupported_pixel_format',
    'image_unreadable',
  ];
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

test('A/B table, feedback and upload errors keep their catalogue codes and list their problems', () => {
  const problems = [{ path: '/variants/0/weight', message: 'must be positive' }];
  const malformed = toApiError(new AbTableError('malformed', problems));
  assert.equal(malformed.code, 'invalid_request');
  assert.deepEqual(malformed.extensions.errors, problems);
  assert.equal(toApiError(new AbTableError('invalid', problems)).code, 'invalid_ab_table');
  assert.equal(toApiError(new AbTableConflictError('not the promotion')).status, 409);
  assert.equal(toApiError(new ResponseNotFoundError('r1')).code, 'response_not_found');
  assert.equal(toApiError(new FeedbackInputError('rating out of range')).code, 'invalid_request');
  const upload = toApiError(new RequestProblem('bad lines', [{ path: 'line 2', message: 'no answer' }]));
  assert.equal(upload.code, 'invalid_upload');
  assert.equal((upload.extensions.errors as unknown[]).length, 1);
  assert.equal(toApiError(new RequestProblem('too big', [], 413)).code, 'payload_too_large');
  assert.match(toApiError(new UnknownBaseModelError('nope')).detail, /"nope" is not in the models directory/);
  assert.equal(toApiError(new JobFinishedError('job x has already succeeded')).status, 409);
});

test('body-parser errors map once, whichever route parsed the body', () => {
  const parseFailed = Object.assign(new SyntaxError('Unexpected token'), { type: 'entity.parse.failed' });
  assert.equal(toApiError(parseFailed).code, 'bad_json');
  assert.equal(
    toApiError(Object.assign(new Error('too large'), { type: 'entity.too.large', limit: 16384 })).detail,
    'The body is larger than the limit of 16384 bytes.',
  );
  assert.equal(toApiError(Object.assign(new Error('charset'), { type: 'charset.unsupported' })).code, 'unsupported_media_type');
});

test('multer limits mean different things for the image upload and the fine-tune upload', () => {
  const tooBig = new multer.MulterError('LIMIT_FILE_SIZE', 'image');
  assert.equal(toApiError(tooBig, { upload: { kind: 'image', maxImageBytes: 1000 } }).code, 'image_too_large_bytes');
  assert.equal(toApiError(tooBig, { upload: { kind: 'fine-tune' } }).code, 'payload_too_large');
  const field = new multer.MulterError('LIMIT_FIELD_VALUE', 'question');
  assert.equal(toApiError(field, { upload: { kind: 'image', maxImageBytes: 1000 } }).code, 'invalid_request');
  assert.equal(toApiError(field, { upload: { kind: 'fine-tune' } }).code, 'invalid_upload');
  assert.equal(toApiError(new Error('Unexpected end of form'), { upload: { kind: 'fine-tune' } }).code, 'invalid_request');
  assert.equal(toApiError(new Error('Unexpected end of form')).code, 'internal_error', 'outside an upload an unknown error stays a 500');
});

// Errors are translated in error-translation.ts only: no other module of src/ maps a domain error
// to an ApiError (a local toApiError, `instanceof SomeError) throw ApiError.of(…)`) or knows the
// body parser's error types.
test('no other module translates errors to ApiErrors', () => {
  const src = path.resolve(import.meta.dirname, '../../src');
  const files = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  const translation = path.join('http', 'error-translation.ts');
  const offenders: string[] = [];
  for (const file of files) {
    if (file === translation) continue;
    const text = readFileSync(path.join(src, file), 'utf8');
    if (/function\s+\w*[tT]oApiError\b/.test(text)) offenders.push(`${file}: defines a toApiError`);
    if (/instanceof\s+\w*Error\)\s*(?:return|throw)\s+ApiError\.of\(/.test(text)) offenders.push(`${file}: maps an error class to an ApiError`);
    if (/'entity\.(?:parse\.failed|too\.large)'/.test(text)) offenders.push(`${file}: maps body-parser errors`);
  }
  assert.deepEqual(offenders, []);
});
