// Upload checks: the request step (parts, names, fields) and the content step (line-numbered schema
// errors, images present and decodable, traversal, duplicates, limits) on the real fixture cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { DEFAULT_UPLOAD_LIMITS, RequestProblem, parseFineTuneRequest, validateUploadContent, type ReceivedPart } from '../../src/jobs/upload-validation.ts';
import { writeTarArchive } from './support/tar-writer.ts';

const FIX = 'test/fixtures/vqa';
const JSONL = readFileSync(path.join(FIX, 'slake.jsonl'));
const imageParts = (): ReceivedPart[] =>
  readdirSync(path.join(FIX, 'images')).map((n) => ({ field: 'images', filename: n, data: readFileSync(path.join(FIX, 'images', n)) }));
const LIMITS = { ...DEFAULT_UPLOAD_LIMITS, minCases: 2 };

test('a request with a JSONL and its images parses into what is staged', () => {
  const r = parseFineTuneRequest(
    { base_model: 'clinvqa-sft', validation_fraction: '0.25', canary_weight: '0.1', hyperparameters: '{"max_steps": 3}' },
    [{ field: 'training_file', filename: 'x.jsonl', data: JSONL }, ...imageParts()],
    LIMITS,
  );
  assert.equal(r.baseModel, 'clinvqa-sft');
  assert.equal(r.validationFraction, 0.25);
  assert.equal(r.canaryWeight, 0.1);
  assert.equal(r.hyperparameters.max_steps, 3);
  assert.equal(r.upload.files.size, readdirSync(path.join(FIX, 'images')).length);
});

test('an archive request takes the JSONL from the archive and paths relative to it', () => {
  const tar = writeTarArchive([
    { path: 'export/cases.jsonl', data: JSONL },
    { path: 'export/images/a.jpg', data: Buffer.from('a') },
    { path: 'other/readme.txt', data: Buffer.from('x') },
  ]);
  const r = parseFineTuneRequest({ base_model: 'm' }, [{ field: 'archive', filename: 'a.tar', data: tar }], LIMITS);
  assert.deepEqual([...r.upload.files.keys()], ['images/a.jpg']);
  assert.deepEqual(r.upload.jsonl, JSONL);
  assert.equal(r.validationFraction, 0.2);
  assert.equal(r.canaryWeight, null);
});

test('request problems are all collected', () => {
  assert.throws(
    () =>
      parseFineTuneRequest(
        { base_model: 'Bad Id', extra: 'x', validation_fraction: 'abc' },
        [{ field: 'images', filename: '../a.jpg', data: Buffer.from('x') }],
        LIMITS,
      ),
    (e: unknown) =>
      e instanceof RequestProblem &&
      e.status === 422 &&
      ['/extra', '/base_model', '/validation_fraction', '/training_file'].every((p) => e.problems.some((q) => q.path === p)),
  );
  const twoJsonl = writeTarArchive([
    { path: 'a.jsonl', data: JSONL },
    { path: 'b.jsonl', data: JSONL },
  ]);
  assert.throws(() => parseFineTuneRequest({ base_model: 'm' }, [{ field: 'archive', filename: 'a.tar', data: twoJsonl }], LIMITS), /2 \.jsonl files/);
  assert.throws(
    () => parseFineTuneRequest({ base_model: 'm' }, [{ field: 'training_file', filename: 'a', data: JSONL }, ...imageParts()], { ...LIMITS, maxFiles: 3 }),
    (e: unknown) => e instanceof RequestProblem && e.status === 413,
  );
});

test('valid content: every image decoded once, stored at the path the JSONL names', async () => {
  const parts = imageParts();
  const r = await validateUploadContent({ jsonl: JSONL, files: new Map(parts.map((p) => [p.filename, p.data])) }, LIMITS);
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.cases, 24);
  for (const key of r.images.keys()) assert.match(key, /^images\/xmlab\d+\.jpg$/);
  // images the JSONL does not name are a warning, not an error
  assert.ok(r.warnings.some((w) => /not named by any line/.test(w.message)));
});

test('invalid content: each problem on its line', async () => {
  const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#888' } })
    .png()
    .toBuffer();
  const bomb = Buffer.from(png);
  bomb.writeUInt32BE(100_000, 16); // IHDR width → 100000 x 8 = 800k pixels, over the limit below
  bomb.writeUInt32BE(100_000, 20);
  const jsonl = [
    '{"id": "a", "image": "ok.png", "question": "Is it normal?", "answer": "yes"}',
    '{"id": "b", "image": "ok.png", "question": "Is it normal?", "answer": "no"}',
    '{"id": "c", "image": "bomb.png", "question": "Q?", "answer": "yes"}',
    '{"id": "d", "image": "sub/../ok.png", "question": "Q?", "answer": "yes"}',
    '{"id": "e", "image": "ok.png", "question": "Q?", "answer": "yes", "answer_type": "maybe"}',
    '{"id": "f", "image": "text.jpg", "question": "Q?", "answer": "yes"}',
  ].join('\n');
  const files = new Map([
    ['ok.png', png],
    ['bomb.png', bomb],
    ['text.jpg', Buffer.from('just text')],
  ]);
  const r = await validateUploadContent({ jsonl: Buffer.from(jsonl), files }, { ...LIMITS, maxInputPixels: 1_000_000 });
  assert.equal(r.ok, false);
  const lines = Object.fromEntries(r.errors.map((e) => [e.line, e.message]));
  assert.deepEqual(Object.keys(lines).map(Number), [2, 3, 4, 5, 6], JSON.stringify(r.errors));
  assert.match(lines[2]!, /different answer/);
  assert.match(lines[3]!, /bomb\.png.*pixels/);
  assert.match(lines[4]!, /"\.\."/);
  assert.match(lines[5]!, /answer_type/);
  assert.match(lines[6]!, /text\.jpg.*not a PNG, JPEG or DICOM/);
});

test('too few cases, too many cases and an oversized JSONL fail the content step', async () => {
  const one = '{"id": "a", "image": "x.jpg", "question": "Q?", "answer": "yes"}';
  const jpg = readFileSync(path.join(FIX, 'images', readdirSync(path.join(FIX, 'images'))[0]!));
  const files = new Map([['x.jpg', jpg]]);
  const few = await validateUploadContent({ jsonl: Buffer.from(one), files }, LIMITS);
  assert.equal(few.ok, false);
  assert.match(!few.ok ? few.errors[0]!.message : '', /at least 2/);
  const many = await validateUploadContent({ jsonl: JSONL, files: new Map(imageParts().map((p) => [p.filename, p.data])) }, { ...LIMITS, maxCases: 10 });
  assert.ok(!many.ok && many.errors.some((e) => /more than 10 cases/.test(e.message)));
  const big = await validateUploadContent({ jsonl: JSONL, files }, { ...LIMITS, maxJsonlBytes: 100 });
  assert.ok(!big.ok && /larger than 100 bytes/.test(big.errors[0]!.message));
});
