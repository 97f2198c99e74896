// Uploads on disk: staged whole (temp name, rename) and read back unchanged; a validated dataset is
// stored under the same sha256 the training provenance computes, once, however often it is uploaded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadVqaUnion } from '../../src/data/jsonl-loader.ts';
import { datasetDir, listStagedUploads, readStagedUpload, removeStagedUpload, stageUpload, storeDataset } from '../../src/jobs/dataset-store.ts';

test('a staged upload reads back byte for byte, and stray temp folders are swept', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dataset-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = new Map([
    ['a.jpg', Buffer.from('A')],
    ['images/b.jpg', Buffer.from('B')],
  ]);
  await stageUpload(dir, 'ftjob-1', { jsonl: Buffer.from('{}\n'), files });
  await assert.rejects(stageUpload(dir, 'ftjob-1', { jsonl: Buffer.from('x'), files }), /already staged/);
  const back = await readStagedUpload(dir, 'ftjob-1');
  assert.deepEqual(back.jsonl, Buffer.from('{}\n'));
  assert.deepEqual(new Map([...back.files].sort()), files);
  await stageUpload(dir, 'ftjob-2', { jsonl: Buffer.from('x'), files: new Map() });
  // a crash between writing and renaming leaves a dot-temp folder
  mkdirSync(path.join(dir, 'uploads', '.ftjob-3.tmp-1-abcd'));
  assert.deepEqual((await listStagedUploads(dir)).sort(), ['ftjob-1', 'ftjob-2']);
  assert.deepEqual(readdirSync(path.join(dir, 'uploads')).sort(), ['ftjob-1', 'ftjob-2']);
  await removeStagedUpload(dir, 'ftjob-1');
  assert.deepEqual(await listStagedUploads(dir), ['ftjob-2']);
});

test('a dataset is stored by the provenance hash, once', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'dataset-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const jsonl = readFileSync('test/fixtures/vqa/slake.jsonl');
  const names = [
    ...new Set(
      jsonl
        .toString()
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { image: string }).image),
    ),
  ];
  const images = new Map(names.map((n) => [n, readFileSync(path.join('test/fixtures/vqa', n))]));
  const a = await storeDataset(dir, jsonl, images);
  const b = await storeDataset(dir, jsonl, images);
  assert.equal(a.sha256, b.sha256);
  assert.equal(a.dir, datasetDir(dir, a.sha256));
  assert.deepEqual(readdirSync(path.join(dir, 'datasets')), [a.sha256], 'no temp leftovers, one copy');
  // the stored folder is a dataset the loaders read, and it hashes to its own name
  const loaded = await loadVqaUnion([path.join(a.dir, 'train.jsonl')], { dataset: 'upload' });
  assert.equal(loaded.errors.length, 0);
  assert.equal(loaded.cases.length, 24);
  assert.equal(loaded.sha256, a.sha256);
  // different bytes, different dataset
  const c = await storeDataset(dir, Buffer.concat([jsonl, Buffer.from('\n')]), images);
  assert.notEqual(c.sha256, a.sha256);
});
