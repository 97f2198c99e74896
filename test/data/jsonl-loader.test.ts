import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { datasetNameFor, loadVqaJsonl, loadVqaUnion, parseVqaJsonl } from '../../src/data/jsonl-loader.ts';

const RAD = 'test/fixtures/vqa/vqa-rad.jsonl';
const SLAKE = 'test/fixtures/vqa/slake.jsonl';
const FAKE = path.resolve('/data/set/train.jsonl');

const rec = (over: Record<string, unknown> = {}): string =>
  JSON.stringify({ id: 'q1', image: 'images/a.jpg', question: 'Is there a mass?', answer: 'Yes', answer_type: 'closed', ...over });

test('loads the VQA-RAD fixture: 24 cases, closed and open, metadata kept, images resolved and present', async () => {
  const r = await loadVqaJsonl(RAD);
  assert.deepEqual([r.errors, r.skipped, r.warnings], [[], [], []]);
  assert.equal(r.dataset, 'vqa-rad');
  assert.equal(r.cases.length, 24);
  assert.equal(r.cases.filter((c) => c.answerType === 'closed').length, 12);
  assert.deepEqual(new Set(r.cases.map((c) => c.organ)), new Set(['head', 'chest', 'abd']));
  const first = r.cases[0]!;
  assert.equal(first.id, 'vqarad-25');
  assert.equal(first.question, 'Is there air under the diaphragm?');
  assert.equal(first.answer, 'No');
  assert.equal(first.questionType, 'PRES');
  assert.equal(first.modality, undefined);
  assert.deepEqual(first.extra, { phrasing: 'freeform' });
  assert.equal(first.imagePath, path.resolve('test/fixtures/vqa/images/synpic29265.jpg'));
  assert.ok(r.cases.every((c) => path.isAbsolute(c.imagePath) && existsSync(c.imagePath)));
  assert.deepEqual(
    r.caseLines,
    Array.from({ length: 24 }, (_, i) => i + 1),
  );
  // Two question types on one row stay as written.
  assert.ok(r.cases.every((c) => typeof c.questionType === 'string' && c.questionType.length > 0));
});

test('loads the SLAKE fixture with modality, organ, content type and knowledge', async () => {
  const r = await loadVqaJsonl(SLAKE);
  assert.equal(r.errors.length, 0);
  assert.equal(r.dataset, 'slake');
  assert.equal(r.cases.length, 24);
  assert.equal(r.cases.filter((c) => c.answerType === 'open').length, 12);
  assert.deepEqual(new Set(r.cases.map((c) => c.modality)), new Set(['CT', 'MRI', 'X-Ray']));
  const c = r.cases.find((x) => x.id === 'slake-10738')!;
  assert.deepEqual([c.modality, c.organ, c.contentType, c.knowledge, c.answerType], ['CT', 'Abdomen', 'KG', true, 'closed']);
  assert.equal(r.cases.find((x) => x.id === 'slake-9873')!.knowledge, false);
  assert.deepEqual(c.extra, {});
});

test('dataset names come from the folder for split files and from the file otherwise', () => {
  assert.equal(datasetNameFor('../shared/data/slake/train.jsonl'), 'slake');
  assert.equal(datasetNameFor('/x/vqa-rad/validation.jsonl'), 'vqa-rad');
  assert.equal(datasetNameFor('test/fixtures/vqa/vqa-rad.jsonl'), 'vqa-rad');
  assert.equal(datasetNameFor('uploads/my-set.JSONL'), 'my-set');
});

test('multiple-choice options are kept and make the question closed', () => {
  const text = rec({ id: 'm1', question: 'Which lobe?', answer: 'Left upper', answer_type: undefined, options: ['Left upper', 'Right lower', 'Middle'] });
  const r = parseVqaJsonl(text, { jsonlPath: FAKE });
  assert.equal(r.errors.length, 0);
  assert.deepEqual(r.cases[0]!.options, ['Left upper', 'Right lower', 'Middle']);
  assert.equal(r.cases[0]!.answerType, 'closed');
  assert.equal(r.cases[0]!.dataset, 'set');
});

test('bad lines are reported with their line numbers, good lines still load', () => {
  const lines = [
    rec({ id: 'ok1' }),
    '{"id": "x", "image": ',
    rec({ id: 'nq', question: undefined }),
    '',
    rec({ id: 'up', image: '../x.jpg' }),
    rec({ id: 'abs', image: '/etc/passwd' }),
    rec({ id: 'ok1', question: 'Another question?' }),
    '[1, 2]',
    rec({ id: 'tok', answer: 'yes</answer>' }),
    rec({ id: 'ok2', question: 'Second?' }),
  ];
  const r = parseVqaJsonl(`${lines.join('\n')}\n`, { jsonlPath: FAKE });
  assert.deepEqual(
    r.cases.map((c) => c.id),
    ['ok1', 'ok2'],
  );
  assert.deepEqual(r.caseLines, [1, 10]);
  const byLine = new Map(r.errors.map((e) => [e.line, e.message]));
  assert.deepEqual([...byLine.keys()], [2, 3, 5, 6, 7, 8, 9]);
  assert.match(byLine.get(2)!, /^invalid JSON/);
  assert.match(byLine.get(3)!, /missing required field "question"/);
  assert.match(byLine.get(5)!, /"\.\."/);
  assert.match(byLine.get(6)!, /absolute/);
  assert.match(byLine.get(7)!, /duplicate id "ok1" \(first on line 1\)/);
  assert.match(byLine.get(8)!, /JSON object/);
  assert.match(byLine.get(9)!, /reserved token <\/answer>/);
});

test('a blank answer is skipped with its line, not a failure (the official SLAKE train split has one)', () => {
  const text = [rec({ id: 'a' }), rec({ id: 'b', answer: '' }), rec({ id: 'c', answer: '  ', question: 7 })].join('\n');
  const r = parseVqaJsonl(text, { jsonlPath: FAKE });
  assert.deepEqual(
    r.cases.map((c) => c.id),
    ['a'],
  );
  assert.deepEqual(r.skipped, [{ line: 2, message: '"answer" must not be empty' }]);
  // With another problem on the line it is an ordinary error.
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0]!.line, 3);
});

test('repeated image+question: same answer is a warning, a different answer an error', () => {
  const text = [rec({ id: 'a' }), rec({ id: 'b', question: '  is there a MASS? ', answer: 'yes' }), rec({ id: 'c', answer: 'No' })].join('\n');
  const r = parseVqaJsonl(text, { jsonlPath: FAKE });
  assert.deepEqual(
    r.cases.map((c) => c.id),
    ['a', 'b'],
  );
  assert.deepEqual(r.warnings, [{ line: 2, message: 'repeats the image, question and answer of line 1' }]);
  assert.equal(r.errors[0]!.line, 3);
  assert.match(r.errors[0]!.message, /different answer/);
});

test('byte input: BOM, CRLF, invalid UTF-8, over-long lines and the error cap', () => {
  const good = Buffer.from(`\uFEFF${rec({ id: 'a' })}\r\n${rec({ id: 'b', question: 'Q2?' })}\r\n`);
  const ok = parseVqaJsonl(good, { jsonlPath: FAKE });
  assert.deepEqual([ok.cases.map((c) => c.id), ok.errors], [['a', 'b'], []]);

  const bad = Buffer.concat([Buffer.from(`${rec({ id: 'a' })}\n`), Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]), Buffer.from('x'.repeat(300))]);
  const r = parseVqaJsonl(bad, { jsonlPath: FAKE, maxLineBytes: 299 });
  assert.deepEqual(r.errors, [
    { line: 2, message: 'line is not valid UTF-8' },
    { line: 3, message: 'line is longer than 299 bytes' },
  ]);

  const garbage = Array.from({ length: 50 }, () => 'nope').join('\n');
  const capped = parseVqaJsonl(garbage, { jsonlPath: FAKE, maxErrors: 5 });
  assert.equal(capped.errors.length, 6);
  assert.deepEqual(capped.errors.at(-1), { line: 6, message: 'stopped after 5 errors' });
});

test('loadVqaJsonl reports a missing image on its line; checkImages:false skips the check', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'clinvqa-loader-'));
  try {
    await mkdir(path.join(dir, 'images'));
    await copyFile('test/fixtures/vqa/images/synpic29265.jpg', path.join(dir, 'images/a.jpg'));
    const file = path.join(dir, 'train.jsonl');
    await writeFile(file, [rec({ id: 'a' }), rec({ id: 'b', image: 'images/missing.jpg', question: 'Q?' })].join('\n'));
    const checked = await loadVqaJsonl(file);
    assert.deepEqual(
      checked.cases.map((c) => c.id),
      ['a'],
    );
    assert.deepEqual(checked.errors, [{ line: 2, message: 'image not found: images/missing.jpg' }]);
    const unchecked = await loadVqaJsonl(file, { checkImages: false });
    assert.equal(unchecked.cases.length, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('union of several files keeps their order and datasets, and refuses an id used in two files', async () => {
  const u = await loadVqaUnion([RAD, SLAKE]);
  assert.equal(u.errors.length, 0);
  assert.equal(u.cases.length, 48);
  assert.deepEqual(
    u.cases.slice(0, 24).map((c) => c.dataset),
    Array(24).fill('vqa-rad'),
  );
  assert.deepEqual(
    u.cases.slice(24).map((c) => c.dataset),
    Array(24).fill('slake'),
  );
  assert.match(u.sha256, /^[0-9a-f]{64}$/);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'clinvqa-union-'));
  try {
    await mkdir(path.join(dir, 'images'));
    await copyFile('test/fixtures/vqa/images/synpic29265.jpg', path.join(dir, 'images/a.jpg'));
    const extra = path.join(dir, 'extra.jsonl');
    await writeFile(extra, [rec({ id: 'new-1' }), rec({ id: 'vqarad-57', question: 'Clash?' })].join('\n'));
    const clash = await loadVqaUnion([RAD, extra]);
    assert.deepEqual(clash.cases.map((c) => c.id).slice(-1), ['new-1']);
    assert.equal(clash.cases.length, 25);
    assert.equal(clash.errors.length, 1);
    assert.equal(clash.errors[0]!.file, extra);
    assert.equal(clash.errors[0]!.line, 2);
    assert.match(clash.errors[0]!.message, /id "vqarad-57" also appears in .*vqa-rad\.jsonl line 2/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
