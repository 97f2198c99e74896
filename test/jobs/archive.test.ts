// The tar reader: plain and gzip archives, ustar long names, pax paths; links, unsafe paths,
// truncation and size limits refused with the entry's name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { ArchiveError, normaliseEntryPath, readTarArchive } from '../../src/jobs/archive.ts';
import { writeTarArchive } from './support/tar-writer.ts';

const LIMITS = { maxBytes: 1 << 20, maxEntries: 10 };
const file = (p: string, text: string) => ({ path: p, data: Buffer.from(text) });

test('reads regular files from tar and tar.gz, long names included', () => {
  const long = `${'d'.repeat(120)}/image.jpg`;
  const tar = writeTarArchive([file('./set/cases.jsonl', '{"a":1}\n'), file('set/images/a.jpg', 'JPEG'), file(long, 'x'.repeat(700))]);
  for (const bytes of [tar, gzipSync(tar)]) {
    const entries = readTarArchive(bytes, LIMITS);
    assert.deepEqual(
      entries.map((e) => e.path),
      ['set/cases.jsonl', 'set/images/a.jpg', long],
    );
    assert.equal(entries[0]!.data.toString(), '{"a":1}\n');
    assert.equal(entries[2]!.data.length, 700);
  }
});

test('a pax header path overrides the ustar name', () => {
  const record = (k: string, v: string) => {
    const body = ` ${k}=${v}\n`;
    let len = body.length + 2;
    if (String(len).length + body.length !== len) len = String(len + 1).length + body.length;
    return `${len}${body}`;
  };
  const tar = writeTarArchive([{ path: 'PaxHeader', data: Buffer.from(record('path', 'deep/name.jsonl')), type: 'x' }, file('short', 'ok')]);
  assert.deepEqual(
    readTarArchive(tar, LIMITS).map((e) => e.path),
    ['deep/name.jsonl'],
  );
});

test('links, unsafe paths, duplicates, corruption and oversize archives are refused', () => {
  const refuse = (bytes: Buffer, pattern: RegExp, tooLarge = false) => {
    assert.throws(
      () => readTarArchive(bytes, LIMITS),
      (e: unknown) => e instanceof ArchiveError && pattern.test(e.message) && e.tooLarge === tooLarge,
    );
  };
  refuse(writeTarArchive([{ path: 'images/a.jpg', data: Buffer.alloc(0), type: '2' }]), /"images\/a\.jpg" is a symbolic link/);
  refuse(writeTarArchive([{ path: 'images/a.jpg', data: Buffer.alloc(0), type: '1' }]), /hard link/);
  refuse(writeTarArchive([file('../etc/passwd', 'x')]), /not a safe relative path/);
  refuse(writeTarArchive([file('/etc/passwd', 'x')]), /not a safe relative path/);
  refuse(writeTarArchive([file('a/b', 'x'), file('./a/b', 'y')]), /appears twice/);
  const tar = writeTarArchive([file('a.jpg', 'x'.repeat(2000))]);
  refuse(tar.subarray(0, 1024), /truncated/);
  const corrupt = Buffer.from(tar);
  corrupt[10] ^= 0xff;
  refuse(corrupt, /not a tar file/);
  refuse(Buffer.from('not an archive at all'), /not a tar file/);
  refuse(gzipSync(Buffer.alloc(2 << 20)), /more than/, true);
  refuse(writeTarArchive(Array.from({ length: 11 }, (_, i) => file(`f${i}`, 'x'))), /more than 10/, true);
});

test('entry paths are normalised or rejected', () => {
  assert.equal(normaliseEntryPath('./a/b.jpg'), 'a/b.jpg');
  assert.equal(normaliseEntryPath('dir/'), 'dir');
  for (const bad of ['', '/a', 'a/../b', 'a//b', 'C:/x', 'a\\b', 'a/./b']) assert.equal(normaliseEntryPath(bad), null, bad);
});
