import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import { ManifestError, REQUIRED_PACKAGE_FILES, isSafeRelativePath, isValidPackageId, parseManifest, readManifest } from '../../src/registry/manifest.ts';

const HASH = 'a'.repeat(64);

/** A complete, valid manifest with every field. */
function validManifest(): Record<string, unknown> {
  return {
    id: 'clinvqa-grpo',
    family: 'clinvqa-vlm',
    preset: 'small',
    version: '1.0.0',
    parent: 'clinvqa-sft',
    created_at: '2025-01-31T12:00:00.000Z',
    method: 'grpo',
    training: { learning_rate: 1e-5, num_generations: 8, loss_type: 'dr_grpo', reward_funcs: ['accuracy', 'format'] },
    seed: 1234,
    dataset: { name: 'vqa-rad', sha256: 'b'.repeat(64) },
    eval: { accuracy: 0.61, closed: { accuracy: 0.7, n: 250 } },
    files: Object.fromEntries(REQUIRED_PACKAGE_FILES.map((f) => [f, HASH])),
  };
}

function assertManifestError(value: unknown, pattern: RegExp): void {
  assert.throws(
    () => parseManifest(value),
    (error: unknown) => {
      assert.ok(error instanceof ManifestError, `expected ManifestError, got ${String(error)}`);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

const withField = (key: string, value: unknown) => ({ ...validManifest(), [key]: value });

describe('manifest', () => {
  it('accepts a complete manifest and returns it unchanged', () => {
    const m = validManifest();
    assert.deepEqual(parseManifest(m), m);
    assert.deepEqual(parseManifest({ ...m, id: 'base-1', parent: null, method: 'base' }).parent, null);
  });

  it('refuses an invalid id, naming the pattern and the value', () => {
    for (const id of ['', 'Clinvqa', '../x', 'a/b', '.hidden', 'x'.repeat(65), 7]) {
      assertManifestError(withField('id', id), /^id must match .* got /);
    }
  });

  it('refuses each malformed field with a message naming it', () => {
    assertManifestError(withField('family', 'llama'), /family must be "clinvqa-vlm"/);
    assertManifestError(withField('preset', ''), /preset/);
    assertManifestError(withField('version', 1), /version/);
    assertManifestError(withField('parent', 'Not An Id'), /parent must be a package id or null/);
    assertManifestError(withField('parent', 'clinvqa-grpo'), /parent must differ from id/);
    assertManifestError(withField('created_at', '31/01/2025'), /created_at must be an ISO 8601 UTC timestamp/);
    assertManifestError(withField('created_at', '2025-02-30T99:00:00Z'), /created_at/);
    assertManifestError(withField('method', 'rlhf'), /method must be one of base, sft, grpo, got "rlhf"/);
    assertManifestError({ ...validManifest(), method: 'base' }, /a base model cannot have a parent/);
    assertManifestError(withField('training', [1]), /training must be an object/);
    assertManifestError(withField('training', { lr: Infinity }), /training\.lr must be a finite number/);
    assertManifestError(withField('seed', 1.5), /seed must be an integer/);
    assertManifestError(withField('dataset', { name: 'vqa-rad' }), /dataset\.sha256/);
    assertManifestError(withField('dataset', { name: '', sha256: HASH }), /dataset\.name/);
    assertManifestError(withField('dataset', { name: 'x', sha256: HASH, path: '/tmp' }), /dataset has fields other than/);
    assertManifestError(withField('eval', { accuracy: 'high' }), /eval must be an object of numbers|eval\.accuracy/);
    assertManifestError(withField('eval', { closed: { accuracy: NaN } }), /eval\.closed\.accuracy must be a finite number/);
    assertManifestError(withField('license', 'mit'), /unknown field "license"/);
    assertManifestError([validManifest()], /manifest must be a JSON object/);
  });

  it('refuses file paths that could leave the package, naming the path', () => {
    for (const path of ['../model.safetensors', 'onnx/../../etc/passwd', '/etc/passwd', 'onnx//decoder.onnx', './config.json', 'a\\b', 'onnx/']) {
      const m = validManifest();
      (m.files as Record<string, string>)[path] = HASH;
      assertManifestError(m, new RegExp(`files: "${path.replace(/[.\\/]/g, '\\$&')}" is not a valid package file path`));
    }
  });

  it('refuses bad hashes, a self-listing manifest and missing required files', () => {
    const upper = validManifest();
    (upper.files as Record<string, string>)['config.json'] = 'A'.repeat(64);
    assertManifestError(upper, /sha256 of "config\.json" must be 64 lowercase hex/);
    const short = validManifest();
    (short.files as Record<string, string>)['tokenizer.json'] = 'abc';
    assertManifestError(short, /sha256 of "tokenizer\.json"/);
    const self = validManifest();
    (self.files as Record<string, string>)['manifest.json'] = HASH;
    assertManifestError(self, /cannot list "manifest\.json" itself/);
    const missing = validManifest();
    delete (missing.files as Record<string, string>)['onnx/decoder.onnx'];
    assertManifestError(missing, /files does not list required file "onnx\/decoder\.onnx"/);
  });

  it('exposes the id and path rules it applies', () => {
    assert.equal(isValidPackageId('clinvqa-sft'), true);
    assert.equal(isValidPackageId('clinvqa-sft.tmp'), true);
    assert.equal(isValidPackageId('.clinvqa-sft.tmp-1-ab'), false);
    assert.equal(isSafeRelativePath('onnx/decoder.onnx'), true);
    assert.equal(isSafeRelativePath('onnx/../decoder.onnx'), false);
    assert.equal(isSafeRelativePath(''), false);
  });
});

describe('readManifest', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'manifest-test-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a valid manifest.json', async () => {
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(validManifest()));
    assert.deepEqual(await readManifest(dir), validManifest());
  });

  it('names the manifest path in every error', async () => {
    const path = join(dir, 'manifest.json');
    await writeFile(path, '{"id": ');
    await assert.rejects(readManifest(dir), (e: Error) => e instanceof ManifestError && e.message.startsWith(`${path}: not valid JSON`));
    await writeFile(path, JSON.stringify(withField('id', 'BAD')));
    await assert.rejects(readManifest(dir), (e: Error) => e instanceof ManifestError && e.message.startsWith(`${path}: id must match`));
    await assert.rejects(readManifest(join(dir, 'nope')), (e: Error) => e instanceof ManifestError && /cannot read manifest \(ENOENT\)/.test(e.message));
  });
});
