import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { datasetManifest, datasetSha256 } from '../../src/data/dataset-hash.ts';
import { loadVqaUnion } from '../../src/data/jsonl-loader.ts';

const FIXTURE_DIR = 'test/fixtures/vqa';

async function withCopy(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'clinvqa-hash-'));
  try {
    await cp(FIXTURE_DIR, dir, { recursive: true });
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const hashOf = async (dir: string, files = ['vqa-rad.jsonl', 'slake.jsonl']): Promise<string> =>
  (await loadVqaUnion(files.map((f) => path.join(dir, f)))).sha256;

test('the dataset hash is stable across loads and across where the data is stored', async () => {
  const here = await hashOf(FIXTURE_DIR);
  assert.equal(await hashOf(FIXTURE_DIR), here);
  await withCopy(async (dir) => assert.equal(await hashOf(dir), here));
});

test('the dataset hash changes when a JSONL byte, an image byte or the file set changes', async () => {
  const original = await hashOf(FIXTURE_DIR);
  assert.notEqual(await hashOf(FIXTURE_DIR, ['vqa-rad.jsonl']), original);
  await withCopy(async (dir) => {
    await appendFile(path.join(dir, 'slake.jsonl'), '\n');
    assert.notEqual(await hashOf(dir), original, 'JSONL bytes');
  });
  await withCopy(async (dir) => {
    const image = path.join(dir, 'images/synpic29265.jpg');
    const bytes = await readFile(image);
    bytes[bytes.length - 3] ^= 1;
    await writeFile(image, bytes);
    assert.notEqual(await hashOf(dir), original, 'image bytes');
  });
});

test('the hash is the sha256 of a sorted sha256sum-style manifest, each image hashed once', async () => {
  const jsonl = Buffer.from('{"a":1}\n');
  const imgA = path.resolve(FIXTURE_DIR, 'images/synpic29265.jpg');
  const imgB = path.resolve(FIXTURE_DIR, 'images/synpic25821.jpg');
  const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
  const sources = [{ dataset: 'rad', jsonlPath: path.resolve(FIXTURE_DIR, 'train.jsonl'), jsonlBytes: jsonl, imagePaths: [imgB, imgA, imgB] }];

  const manifest = await datasetManifest(sources);
  assert.deepEqual(manifest, [
    { key: 'rad/images/synpic25821.jpg', sha256: sha(await readFile(imgB)) },
    { key: 'rad/images/synpic29265.jpg', sha256: sha(await readFile(imgA)) },
    { key: 'rad/train.jsonl', sha256: sha(jsonl) },
  ]);
  const expected = sha(manifest.map((e) => `${e.sha256}  ${e.key}\n`).join(''));
  assert.equal(await datasetSha256(sources), expected);
  // Renaming the dataset renames every key, so the hash changes with it.
  assert.notEqual(await datasetSha256([{ ...sources[0]!, dataset: 'other' }]), expected);
});

test('the order in which the sources are listed does not change the hash', async () => {
  const a = await hashOf(FIXTURE_DIR, ['vqa-rad.jsonl', 'slake.jsonl']);
  const b = await hashOf(FIXTURE_DIR, ['slake.jsonl', 'vqa-rad.jsonl']);
  assert.equal(a, b);
});
