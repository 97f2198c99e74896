// assert.throws / assert.rejects validator: passes only for an ImageInputError with this code,
// so a test cannot pass on some unrelated exception.

import assert from 'node:assert/strict';
import { ImageInputError, type ImageInputErrorCode } from '../../src/preprocess/errors.ts';

export function imageInputError(code: ImageInputErrorCode, messageIncludes: string[] = []): (thrown: unknown) => true {
  return (thrown: unknown) => {
    assert.ok(thrown instanceof ImageInputError, `expected ImageInputError, got ${String(thrown)}`);
    assert.equal(thrown.code, code, `wrong code; message: ${thrown.message}`);
    for (const part of messageIncludes) assert.ok(thrown.message.includes(part), `message lacks "${part}": ${thrown.message}`);
    return true;
  };
}
