// Every kind of bad input gets a problem+json 4xx that matches the contract, and
// the server still answers a good request right after it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import request from 'supertest';
import { assertProblem } from '../helpers/contract.ts';
import { dataUrl, realJpeg, smallPng } from '../helpers/images.ts';
import { ADMIN_AUTH, AUTH, makeTestApp, type TestApp } from '../helpers/test-app.ts';
import { withJpegDimensions, withPngDimensions } from '../preprocess/header-patch.ts';
import { TS, writeDicomImage } from '../preprocess/dicom-writer.ts';

let t: TestApp;
let png: Buffer;
const MAX_BYTES = 64 * 1024;

before(async () => {
  t = await makeTestApp({ env: { CLINVQA_MAX_IMAGE_BYTES: String(MAX_BYTES), CLINVQA_MAX_IMAGE_PIXELS: String(4096 * 4096) } });
  png = await smallPng();
});
after(async () => t.cleanup());

async function stillHealthy(): Promise<void> {
  const health = await request(t.clinvqa.app).get('/healthz');
  assert.equal(health.status, 200);
  const ok = await request(t.clinvqa.app)
    .post('/v1/vqa')
    .set(AUTH)
    .send({ image: png.toString('base64'), question: 'Normal?' });
  assert.equal(ok.status, 200, ok.text);
}

function vqaMultipart(image: Buffer | undefined, question = 'Is this normal?') {
  const req = request(t.clinvqa.app).post('/v1/vqa').set(AUTH);
  if (image) req.attach('image', image, { filename: 'upload.bin', contentType: 'application/octet-stream' });
  return req.field('question', question);
}

test('no image: multipart without the part, and JSON without the field → 400 image_missing', async () => {
  assertProblem('POST', '/v1/vqa', await vqaMultipart(undefined), 400, 'image_missing');
  assertProblem('POST', '/v1/vqa', await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).send({ question: 'Normal?' }), 400, 'image_missing');
  await stillHealthy();
});

test('not an image → 415 naming the accepted formats', async () => {
  const res = await vqaMultipart(Buffer.from('%PDF-1.7 this is a pdf, not an image'));
  assertProblem('POST', '/v1/vqa', res, 415, 'unsupported_media_type');
  assert.match(res.body.detail, /PNG, JPEG or DICOM/);
  await stillHealthy();
});

test('truncated PNG and truncated JPEG → 422 image_unreadable', async () => {
  const jpeg = realJpeg.subarray(0, Math.floor(realJpeg.length * 0.6));
  assertProblem('POST', '/v1/vqa', await vqaMultipart(jpeg), 422, 'image_unreadable');
  const truncatedPng = png.subarray(0, Math.floor(png.length * 0.6));
  assertProblem('POST', '/v1/vqa', await vqaMultipart(truncatedPng), 422, 'image_unreadable');
  await stillHealthy();
});

test('pixel bomb (huge declared size, small file) → 413 image_too_large_pixels, quickly', async () => {
  const started = performance.now();
  const pngBomb = withPngDimensions(png, 60_000, 60_000);
  assert.ok(pngBomb.length < MAX_BYTES);
  assertProblem('POST', '/v1/vqa', await vqaMultipart(pngBomb), 413, 'image_too_large_pixels');
  const jpegBomb = withJpegDimensions(await (await import('sharp')).default(png).jpeg().toBuffer(), 60_000, 60_000);
  assertProblem('POST', '/v1/vqa', await vqaMultipart(jpegBomb), 413, 'image_too_large_pixels');
  assert.ok(performance.now() - started < 3_000);
  await stillHealthy();
});

test('file over the byte limit → 413, multipart and JSON', async () => {
  const big = Buffer.concat([realJpeg, Buffer.alloc(MAX_BYTES)]);
  assertProblem('POST', '/v1/vqa', await vqaMultipart(big), 413, 'image_too_large_bytes');
  const json = await request(t.clinvqa.app)
    .post('/v1/vqa')
    .set(AUTH)
    .send({ image: big.toString('base64'), question: 'Normal?' });
  assert.equal(json.status, 413, json.text);
  assertProblem('POST', '/v1/vqa', json, 413);
  // A JSON body beyond even the base64 allowance is cut off by the body parser.
  const huge = await request(t.clinvqa.app)
    .post('/v1/vqa')
    .set(AUTH)
    .send({ image: Buffer.alloc(MAX_BYTES * 2).toString('base64'), question: 'Normal?' });
  assertProblem('POST', '/v1/vqa', huge, 413, 'payload_too_large');
  await stillHealthy();
});

test('question empty, blank or too long → 400', async () => {
  assertProblem('POST', '/v1/vqa', await vqaMultipart(png, ''), 400, 'question_empty');
  assertProblem('POST', '/v1/vqa', await vqaMultipart(png, '   \n '), 400, 'question_empty');
  const long = await vqaMultipart(png, 'why '.repeat(600));
  assertProblem('POST', '/v1/vqa', long, 400, 'invalid_request');
  assert.equal(long.body.errors[0].path, '/question');
  const chat = await request(t.clinvqa.app)
    .post('/v1/chat/completions')
    .set(AUTH)
    .send({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: dataUrl(png, 'image/png') } },
            { type: 'text', text: '  ' },
          ],
        },
      ],
    });
  assertProblem('POST', '/v1/chat/completions', chat, 400, 'question_empty');
  await stillHealthy();
});

test('unknown model → 404 model_not_found; malformed model id → 400', async () => {
  const res = await request(t.clinvqa.app)
    .post('/v1/vqa')
    .set(AUTH)
    .send({ image: png.toString('base64'), question: 'Normal?', model: 'no-such-model' });
  assertProblem('POST', '/v1/vqa', res, 404, 'model_not_found');
  const chat = await request(t.clinvqa.app)
    .post('/v1/chat/completions')
    .set(AUTH)
    .send({
      model: 'gpt-4o',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: dataUrl(png, 'image/png') } },
            { type: 'text', text: 'Normal?' },
          ],
        },
      ],
    });
  assertProblem('POST', '/v1/chat/completions', chat, 404, 'model_not_found');
  const bad = await request(t.clinvqa.app)
    .post('/v1/vqa')
    .set(AUTH)
    .send({ image: png.toString('base64'), question: 'Normal?', model: '../etc/passwd' });
  assertProblem('POST', '/v1/vqa', bad, 400, 'invalid_request');
  await stillHealthy();
});

test('bad JSON → 400 bad_json; wrong JSON types and unknown fields → 400 invalid_request', async () => {
  const broken = await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).set('Content-Type', 'application/json').send('{"question": "Normal?", "image": ');
  assertProblem('POST', '/v1/vqa', broken, 400, 'bad_json');
  const typed = await request(t.clinvqa.app)
    .post('/v1/vqa')
    .set(AUTH)
    .send({ image: png.toString('base64'), question: 'Normal?', temperature: 'hot', extra: 1 });
  assertProblem('POST', '/v1/vqa', typed, 400, 'invalid_request');
  assert.deepEqual(typed.body.errors.map((e: { path: string }) => e.path).sort(), ['/extra', '/temperature']);
  const notObject = await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).set('Content-Type', 'application/json').send('"just a string"');
  assertProblem('POST', '/v1/vqa', notObject, 400, 'bad_json');
  await stillHealthy();
});

test('bad base64 (JSON field and chat data: URL) → 400 bad_base64; remote image URL → 400', async () => {
  const res = await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).send({ image: 'this is *not* base64!!', question: 'Normal?' });
  assertProblem('POST', '/v1/vqa', res, 400, 'bad_base64');
  const chatMessages = (url: string) => ({
    messages: [
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url } },
          { type: 'text', text: 'Normal?' },
        ],
      },
    ],
  });
  assertProblem(
    'POST',
    '/v1/chat/completions',
    await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).send(chatMessages('data:image/png;base64,@@@@')),
    400,
    'bad_base64',
  );
  assertProblem(
    'POST',
    '/v1/chat/completions',
    await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).send(chatMessages('https://example.org/x.png')),
    400,
    'image_url_not_supported',
  );
  await stillHealthy();
});

test('wrong content type → 415', async () => {
  const text = await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).set('Content-Type', 'text/plain').send('question=hi');
  assertProblem('POST', '/v1/vqa', text, 415, 'unsupported_media_type');
  const form = await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).type('form').send({ question: 'hi' });
  assertProblem('POST', '/v1/vqa', form, 415, 'unsupported_media_type');
  const none = await request(t.clinvqa.app).post('/v1/vqa').set(AUTH);
  assertProblem('POST', '/v1/vqa', none, 415, 'unsupported_media_type');
  const chatMultipart = await request(t.clinvqa.app).post('/v1/chat/completions').set(AUTH).attach('image', png, 'a.png');
  assertProblem('POST', '/v1/chat/completions', chatMultipart, 415, 'unsupported_media_type');
  await stillHealthy();
});

test('malformed multipart and unexpected file parts → 400', async () => {
  const truncated = await request(t.clinvqa.app)
    .post('/v1/vqa')
    .set(AUTH)
    .set('Content-Type', 'multipart/form-data; boundary=XYZ')
    .send('--XYZ\r\nContent-Disposition: form-data; name="question"\r\n\r\nhello');
  assertProblem('POST', '/v1/vqa', truncated, 400, 'invalid_request');
  const wrongPart = await request(t.clinvqa.app).post('/v1/vqa').set(AUTH).attach('picture', png, 'a.png').field('question', 'Normal?');
  assertProblem('POST', '/v1/vqa', wrongPart, 400, 'invalid_request');
  await stillHealthy();
});

test('DICOM: a supported file answers; a compressed transfer syntax → 415 naming the supported ones', async () => {
  const samples = Array.from({ length: 16 * 16 }, (_, i) => (i * 97) % 4096);
  const ok = writeDicomImage({ transferSyntax: TS.explicitLittle, rows: 16, columns: 16, bitsAllocated: 16, samples });
  const res = await vqaMultipart(ok);
  assert.equal(res.status, 200, res.text);
  const jpeg2000 = writeDicomImage({ transferSyntax: TS.jpeg2000, rows: 16, columns: 16, bitsAllocated: 16, samples });
  const refused = await vqaMultipart(jpeg2000);
  assertProblem('POST', '/v1/vqa', refused, 415, 'dicom_unsupported_transfer_syntax');
  assert.match(refused.body.detail, /1\.2\.840\.10008\.1\.2\.1/);
  await stillHealthy();
});

test('missing, malformed, unknown and insufficient keys → 401 / 403', async () => {
  const body = { image: png.toString('base64'), question: 'Normal?' };
  const none = await request(t.clinvqa.app).post('/v1/vqa').send(body);
  assertProblem('POST', '/v1/vqa', none, 401, 'unauthorized');
  assert.match(String(none.headers['www-authenticate']), /^Bearer/);
  assertProblem('POST', '/v1/vqa', await request(t.clinvqa.app).post('/v1/vqa').set('Authorization', 'Basic abc').send(body), 401, 'unauthorized');
  assertProblem(
    'POST',
    '/v1/vqa',
    await request(t.clinvqa.app).post('/v1/vqa').set('Authorization', 'Bearer not-a-known-key-123456').send(body),
    401,
    'unauthorized',
  );
  assertProblem('GET', '/admin/ab', await request(t.clinvqa.app).get('/admin/ab').set(AUTH), 403, 'forbidden');
  assertProblem('GET', '/admin/ab/report', await request(t.clinvqa.app).get('/admin/ab/report').set(AUTH), 403, 'forbidden');
  assertProblem('POST', '/admin/models/clinvqa-sft/load', await request(t.clinvqa.app).post('/admin/models/clinvqa-sft/load').set(AUTH), 403, 'forbidden');
  // Unknown admin paths still need an admin key (nothing mounted later is left open).
  const unknownAdmin = await request(t.clinvqa.app).get('/admin/secret-thing').set(AUTH);
  assert.equal(unknownAdmin.status, 403);
  const admin = await request(t.clinvqa.app).get('/admin/ab').set(ADMIN_AUTH);
  assert.equal(admin.status, 200);
  await stillHealthy();
});
