import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeThrown, ImageInputError } from '../../src/preprocess/errors.ts';

test('status follows from the code', () => {
  const cases = [
    ['image_missing', 400],
    ['image_too_large_bytes', 413],
    ['image_too_large_pixels', 413],
    ['unsupported_media_type', 415],
    ['dicom_unsupported_transfer_syntax', 415],
    ['dicom_unsupported_pixel_format', 415],
    ['image_unreadable', 422],
  ] as const;
  for (const [code, status] of cases) {
    const error = new ImageInputError(code, 'm');
    assert.equal(error.status, status, code);
    assert.equal(error.code, code);
  }
});

test('is an Error with name, message and cause', () => {
  const cause = new Error('inner');
  const error = new ImageInputError('image_unreadable', 'bad file', { cause });
  assert.ok(error instanceof Error);
  assert.equal(error.name, 'ImageInputError');
  assert.equal(error.message, 'bad file');
  assert.equal(error.cause, cause);
});

test('describeThrown reads what dicom-parser throws (strings, {exception} objects)', () => {
  assert.equal(describeThrown(new Error('e')), 'e');
  assert.equal(describeThrown('buffer overread'), 'buffer overread');
  assert.equal(describeThrown({ exception: 'inner text', dataSet: {} }), 'inner text');
  assert.equal(describeThrown(42), '42');
});
