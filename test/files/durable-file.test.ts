// The one module for durable writes: whole content or the old content, never a partial file, no
// temporary leftovers, an existing directory never replaced.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  parseTempName,
  publishDirectory,
  readJson,
  sha256File,
  sha256Hex,
  tempPath,
  writeFileDurably,
  writeFileDurablySync,
  writeJsonDurably,
} from '../../src/files/durable-file.ts';

async function scratch(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'durable-file-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('sha256Hex and sha256File agree with the known digest of "abc"', async (t) => {
  const abc = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';
  assert.equal(sha256Hex('abc'), abc);
  assert.equal(sha256Hex(Buffer.from('abc')), abc);
  const dir = await scratch(t);
  await writeFile(join(dir, 'f'), 'abc');
  assert.equal(await sha256File(join(dir, 'f')), abc);
});

test('writeFileDurably replaces a file whole and leaves no temporary file', async (t) => {
  const dir = await scratch(t);
  const file = join(dir, 'table.json');
  await writeFileDurably(file, 'old');
  await writeFileDurably(file, 'new content');
  assert.equal(await readFile(file, 'utf8'), 'new content');
  writeFileDurablySync(file, 'sync content');
  assert.equal(await readFile(file, 'utf8'), 'sync content');
  assert.deepEqual(await readdir(dir), ['table.json']);
});

test('a write that fails midway keeps the old content and removes its temporary file', async (t) => {
  const dir = await scratch(t);
  const file = join(dir, 'weights.bin');
  await writeFileDurably(file, 'old');
  await assert.rejects(
    writeFileDurably(file, async (handle) => {
      await handle.write(Buffer.from('half of the new'));
      throw new Error('disk full');
    }),
    /disk full/,
  );
  assert.equal(await readFile(file, 'utf8'), 'old');
  assert.deepEqual(await readdir(dir), ['weights.bin']);
});

test('readJson: null for a missing file, the value for a written one, an error for malformed JSON', async (t) => {
  const dir = await scratch(t);
  assert.equal(await readJson(join(dir, 'none.json')), null);
  await writeJsonDurably(join(dir, 'a.json'), { a: [1, 2] });
  assert.deepEqual(await readJson(join(dir, 'a.json')), { a: [1, 2] });
  await writeFile(join(dir, 'bad.json'), '{"a": ');
  await assert.rejects(readJson(join(dir, 'bad.json')), SyntaxError);
});

test('publishDirectory writes nested files in one rename and never replaces an existing directory', async (t) => {
  const dir = await scratch(t);
  const target = join(dir, 'pkg');
  let seenTemp = '';
  const outcome = await publishDirectory(
    target,
    [
      ['a.txt', 'A'],
      ['onnx/b.onnx', Buffer.from([1, 2])],
    ],
    {
      beforeRename: async (tmp) => {
        seenTemp = tmp;
        assert.deepEqual((await readdir(tmp)).sort(), ['a.txt', 'onnx']);
        assert.deepEqual(await readdir(dir), [tmp.slice(dir.length + 1)], 'nothing at the target yet');
      },
    },
  );
  assert.equal(outcome, 'written');
  assert.equal(parseTempName(seenTemp.slice(dir.length + 1))?.name, 'pkg');
  assert.equal(await readFile(join(target, 'onnx', 'b.onnx')).then((b) => b.length), 2);
  assert.equal(await publishDirectory(target, [['a.txt', 'other']]), 'existed');
  assert.equal(await readFile(join(target, 'a.txt'), 'utf8'), 'A');
  assert.deepEqual(await readdir(dir), ['pkg'], 'the refused temporary directory is removed');
});

test('a publish that fails removes its temporary directory', async (t) => {
  const dir = await scratch(t);
  await mkdir(join(dir, 'sub'));
  await assert.rejects(
    publishDirectory(join(dir, 'sub', 'pkg'), [
      ['x', 'a'],
      ['x', 'duplicate'],
    ]),
    { code: 'EEXIST' },
  );
  assert.deepEqual(await readdir(join(dir, 'sub')), []);
});

test('temporary names say what they become and which process wrote them', () => {
  const file = tempPath('/d', 'ab-table.json', 'file').slice(3);
  assert.deepEqual(parseTempName(file), { name: 'ab-table.json', pid: process.pid, kind: 'file' });
  const directory = tempPath('/d', 'clinvqa-sft', 'directory').slice(3);
  assert.deepEqual(parseTempName(directory), { name: 'clinvqa-sft', pid: process.pid, kind: 'directory' });
  assert.equal(parseTempName('clinvqa-sft'), null);
});

// A rename or an fsync anywhere else is a durable write done by hand, which is how five copies of
// this module came about.
test('only src/files/ renames or fsyncs', async () => {
  const src = join(import.meta.dirname, '../../src');
  const offenders: string[] = [];
  for (const file of await readdir(src, { recursive: true })) {
    if (!file.endsWith('.ts') || file.startsWith('files/')) continue;
    const code = (await readFile(join(src, file), 'utf8')).split('\n').filter((line) => !/^\s*(\/\/|\*|\/\*)/.test(line));
    code.forEach((line, i) => {
      if (/\b(rename|renameSync|fsync|fsyncSync|fdatasync)\s*\(|\.sync\(\)/.test(line)) offenders.push(`src/${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, []);
});
