import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadStandardValidation } from '../../src/jobs/standard-validation.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
const FIXTURES = path.resolve(here, '../fixtures/vqa');

function withDir(work: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-stdval-'));
  return work(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

test('found files: a spread sample of eval_samples cases, no warning; 0 means all of them', async () => {
  const files = [path.join(FIXTURES, 'slake.jsonl'), path.join(FIXTURES, 'vqa-rad.jsonl')];
  const all = await loadStandardValidation(files, 0);
  assert.equal(all.unavailable, false);
  assert.equal(all.warning, undefined);
  assert.ok(all.cases.length > 6);
  const some = await loadStandardValidation(files, 6);
  assert.equal(some.cases.length, 6);
  assert.equal(some.unavailable, false);
});

test('no file found → unavailable, with a warning naming the missing files', async () => {
  await withDir(async (dir) => {
    const missing = [path.join(dir, 'slake', 'validation.jsonl'), path.join(dir, 'vqa-rad', 'validation.jsonl')];
    const v = await loadStandardValidation(missing, 200);
    assert.equal(v.unavailable, true);
    assert.deepEqual(v.cases, []);
    assert.match(v.warning!, /standard validation set is unavailable \(not found: slake\/validation\.jsonl, vqa-rad\/validation\.jsonl\)/);
    assert.ok(!v.warning!.includes(dir), 'the warning shows no server paths');
  });
});

test('none configured, or files without a usable case → unavailable with a reason; part missing → scored, with a warning', async () => {
  const none = await loadStandardValidation([], 200);
  assert.equal(none.unavailable, true);
  assert.match(none.warning!, /no standard validation set is configured/);
  await withDir(async (dir) => {
    const empty = path.join(dir, 'empty', 'validation.jsonl');
    mkdirSync(path.dirname(empty), { recursive: true });
    writeFileSync(empty, '');
    const blank = await loadStandardValidation([empty], 200);
    assert.equal(blank.unavailable, true);
    assert.match(blank.warning!, /no usable case in empty\/validation\.jsonl/);
    // One file found, one missing: the found one is scored.
    const slake = path.join(FIXTURES, 'slake.jsonl');
    const partial = await loadStandardValidation([slake, path.join(dir, 'gone', 'validation.jsonl')], 0);
    assert.equal(partial.unavailable, false);
    assert.ok(partial.cases.length > 0);
    assert.match(partial.warning!, /part of the standard validation set was not found \(gone\/validation\.jsonl\)/);
  });
});
