// The server over a models directory holding Hugging Face folders as downloaded: the reference
// Qwen2-VL folder serves; a broken copy and a folder named unlike a model id are logged and skipped.
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import request from 'supertest';
import { createApp, type ClinvqaApp } from '../../src/app.ts';
import type { Logger } from '../../src/audit/logger.ts';
import { loadConfig } from '../../src/config.ts';
import { encodeSafetensors, readSafetensors } from '../../src/engine/export/safetensors.ts';
import { createModelLoader } from '../../src/runtime/architectures.ts';
import { dataUrl } from '../helpers/images.ts';
import { assertContract } from '../helpers/contract.ts';
import { GOLDEN_DIR, REFERENCE_DIR } from '../support/hf-folders.ts';

const KEY = 'clinician-key-0123456789';
const AUTH = { Authorization: `Bearer ${KEY}` };

describe('serving Hugging Face Qwen2-VL folders', () => {
  let root: string;
  let app: ClinvqaApp;
  let image: Buffer;
  const errors: { message: string; fields?: Record<string, unknown> }[] = [];

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'clinvqa-hf-serve-'));
    const modelsDir = path.join(root, 'models');
    await cp(REFERENCE_DIR, path.join(modelsDir, 'qwen2-vl-tiny'), { recursive: true, filter: (src) => !src.includes('golden') });
    // broken: one tensor missing
    const broken = path.join(modelsDir, 'qwen2-vl-broken');
    await cp(REFERENCE_DIR, broken, { recursive: true, filter: (src) => !src.includes('golden') });
    const { chmod } = await import('node:fs/promises');
    await chmod(broken, 0o755);
    await chmod(path.join(broken, 'model.safetensors'), 0o644);
    const { tensors } = await readSafetensors(path.join(REFERENCE_DIR, 'model.safetensors'));
    delete tensors['model.norm.weight'];
    await writeFile(path.join(broken, 'model.safetensors'), encodeSafetensors(tensors));
    await cp(REFERENCE_DIR, path.join(modelsDir, 'Qwen2-VL-Upper'), { recursive: true, filter: (src) => !src.includes('golden') });
    image = await readFile(path.join(GOLDEN_DIR, 'image.png'));

    const dataDir = path.join(root, 'var');
    const config = loadConfig({
      CLINVQA_API_KEYS: `clinician:${KEY}`,
      CLINVQA_DATA_DIR: dataDir,
      CLINVQA_MODELS_DIR: modelsDir,
      CLINVQA_BATCH_MAX_WAIT_MS: '2',
    });
    const logger: Logger = {
      info: () => undefined,
      warn: () => undefined,
      debug: () => undefined,
      error: (message: string, fields?: Record<string, unknown>) => errors.push({ message, ...(fields ? { fields } : {}) }),
    } as unknown as Logger;
    app = await createApp({ config, loader: createModelLoader({ dataDir }), logger });
  });
  after(async () => {
    await app?.close();
    await rm(root, { recursive: true, force: true });
  });

  it('lists the good folder with its card; the broken and the badly named ones are logged, not listed', async () => {
    const res = await request(app.app).get('/v1/models').set(AUTH);
    assert.equal(res.status, 200);
    assertContract('GET', '/v1/models', res);
    assert.deepEqual(
      res.body.data.map((m: { id: string }) => m.id),
      ['qwen2-vl-tiny'],
    );
    const card = res.body.data[0].manifest;
    assert.equal(card.source, 'imported');
    assert.equal(card.architecture, 'Qwen2VLForConditionalGeneration');
    assert.equal(card.parameters, 227_712);
    assert.equal(card.dtype, 'float32');
    assert.match(card.weights_sha256, /^[0-9a-f]{64}$/);
    const broken = errors.find((e) => e.fields?.model === 'qwen2-vl-broken');
    assert.match(String(broken?.fields?.error), /qwen2-vl-broken\/model\.safetensors: missing tensor "model\.norm\.weight" \[64\]/);
    const upper = errors.find((e) => e.fields?.folder === 'Qwen2-VL-Upper');
    assert.match(String(upper?.fields?.error), /not a valid model id.*"qwen2-vl-upper"/);
    // the (writable) model folder is left as it was: the serving graphs went to the data dir
    const { readdir } = await import('node:fs/promises');
    const files = (await readdir(path.join(root, 'models', 'qwen2-vl-tiny'))).sort();
    assert.deepEqual(files, (await readdir(REFERENCE_DIR)).filter((f) => f !== 'golden').sort());
    assert.ok((await readdir(path.join(root, 'var', 'graph-cache'))).length === 1);
  });

  it('answers /v1/vqa and /v1/chat/completions with it', async () => {
    const vqa = await request(app.app)
      .post('/v1/vqa')
      .set(AUTH)
      .send({ image: image.toString('base64'), question: 'What modality is this?', max_tokens: 4 });
    assert.equal(vqa.status, 200, vqa.text);
    assertContract('POST', '/v1/vqa', vqa);
    assert.equal(vqa.body.model, 'qwen2-vl-tiny');
    assert.equal(typeof vqa.body.answer, 'string');
    assert.ok(vqa.body.usage.prompt_tokens > 24);

    const chat = await request(app.app)
      .post('/v1/chat/completions')
      .set(AUTH)
      .send({
        model: 'qwen2-vl-tiny',
        max_tokens: 4,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'image_url', image_url: { url: dataUrl(image, 'image/png') } },
              { type: 'text', text: 'What modality is this?' },
            ],
          },
        ],
      });
    assert.equal(chat.status, 200, chat.text);
    assertContract('POST', '/v1/chat/completions', chat);
    // the same question, greedy: the same reply on both routes
    assert.equal(chat.body.choices[0].message.content, vqa.body.answer);
  });
});
