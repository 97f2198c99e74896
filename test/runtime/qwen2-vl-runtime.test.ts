import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { readSafetensors } from '../../src/engine/export/safetensors.ts';
import { ImageInputError } from '../../src/preprocess/errors.ts';
import { generateQwen2Vl, type Qwen2VlRow } from '../../src/runtime/qwen2-vl/generate.ts';
import { loadQwen2VlRuntime, splitReply, type Qwen2VlRuntime } from '../../src/runtime/qwen2-vl/runtime.ts';
import { GRAPH_CACHE_DIR } from '../../src/runtime/qwen2-vl/graph-cache.ts';
import { buildPromptIds, questionTurns } from '../../src/engine/architectures/qwen2-vl/prompt.ts';
import { GOLDEN_DIR, REFERENCE_DIR } from '../support/hf-folders.ts';

const LIMITS = { maxInputPixels: 10_000_000, maxBytes: 10_000_000 };
const GREEDY = { temperature: 0, topP: 1 };

interface GoldenCase {
  input_ids: number[];
  image_grid_thw: [number, number, number][];
  generated_ids: number[];
  weights_sha256?: string;
}

describe('Qwen2-VL runtime on the reference folder', () => {
  let dataDir: string;
  let runtime: Qwen2VlRuntime;
  let golden: GoldenCase;
  let goldenPixels: Float32Array;
  let image: Buffer;
  const logs: string[] = [];

  before(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'clinvqa-qwen-'));
    runtime = await loadQwen2VlRuntime(REFERENCE_DIR, { executionProviders: ['cpu'], intraOpThreads: 1, dataDir, log: (m) => logs.push(m) });
    golden = JSON.parse(await readFile(path.join(GOLDEN_DIR, 'case.json'), 'utf8')) as GoldenCase;
    goldenPixels = (await readSafetensors(path.join(GOLDEN_DIR, 'tensors.safetensors'))).tensors.pixel_values!.data as Float32Array;
    image = await readFile(path.join(GOLDEN_DIR, 'image.png'));
  });
  after(async () => {
    await runtime?.dispose();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('reproduces the golden greedy ids through the batched generation path (prefill + KV-cache steps)', async () => {
    const out = await generateQwen2Vl(
      (runtime as unknown as { sessions: Parameters<typeof generateQwen2Vl>[0] }).sessions,
      [{ promptIds: golden.input_ids, pixelValues: goldenPixels, grids: golden.image_grid_thw, sampling: GREEDY, maxTokens: 8 }],
      { stopIds: [], padId: 496 },
    );
    assert.deepEqual(out.rows[0]!.tokens, golden.generated_ids);
    assert.equal(out.rows[0]!.finishReason, 'length');
  });

  it('a left-padded batch of prompts of different lengths and images of different sizes gives each row exactly its tokens alone', async () => {
    const sessions = (runtime as unknown as { sessions: Parameters<typeof generateQwen2Vl>[0] }).sessions;
    const small = await runtime.prepareImage(await sharp(image).resize(90, 60).png().toBuffer(), LIMITS);
    const tall = await runtime.prepareImage(await sharp(image).resize(70, 150).png().toBuffer(), LIMITS);
    assert.notDeepEqual(small.gridThw, tall.gridThw);
    const text = (n: number) => Array.from({ length: n }, (_, i) => 20 + ((i * 37) % 400));
    const withImage = (before: number, grid: readonly [number, number, number], after: number): number[] => [
      497,
      ...text(before),
      505,
      ...new Array<number>((grid[0] * grid[1] * grid[2]) / 4).fill(508),
      506,
      ...text(after),
      498,
      497,
    ];
    const rows: Qwen2VlRow[] = [
      { promptIds: golden.input_ids, pixelValues: goldenPixels, grids: golden.image_grid_thw, sampling: GREEDY, maxTokens: 8 },
      { promptIds: withImage(2, small.gridThw!, 3), pixelValues: small.patches, grids: [small.gridThw!], sampling: GREEDY, maxTokens: 8 },
      { promptIds: withImage(9, tall.gridThw!, 17), pixelValues: tall.patches, grids: [tall.gridThw!], sampling: GREEDY, maxTokens: 5 },
      { promptIds: text(6), pixelValues: new Float32Array(0), grids: [], sampling: GREEDY, maxTokens: 8 },
    ];
    const lengths = new Set(rows.map((r) => r.promptIds.length));
    assert.equal(lengths.size, 4, 'four different prompt lengths');
    const together = await generateQwen2Vl(sessions, rows, { stopIds: [], padId: 496 });
    for (const [b, row] of rows.entries()) {
      const alone = await generateQwen2Vl(sessions, [row], { stopIds: [], padId: 496 });
      assert.deepEqual(together.rows[b]!.tokens, alone.rows[0]!.tokens, `row ${b}`);
      assert.equal(together.rows[b]!.tokens.length, row.maxTokens);
    }
    // a stop id ends one row early and leaves the others as they were
    const stopAt = together.rows[1]!.tokens[2]!;
    const stopped = await generateQwen2Vl(sessions, rows, { stopIds: [stopAt], padId: 496 });
    const first = together.rows[1]!.tokens.indexOf(stopAt);
    assert.deepEqual(stopped.rows[1]!.tokens, together.rows[1]!.tokens.slice(0, first + 1));
    assert.equal(stopped.rows[1]!.finishReason, 'stop');
    for (const b of [0, 2, 3]) {
      const cut = together.rows[b]!.tokens.indexOf(stopAt);
      assert.deepEqual(stopped.rows[b]!.tokens, cut === -1 ? together.rows[b]!.tokens : together.rows[b]!.tokens.slice(0, cut + 1));
    }
  });

  it('answers questions through generateBatch with the folder template; batched equals alone', async () => {
    const a = await runtime.prepareImage(image, LIMITS);
    const b = await runtime.prepareImage(await sharp(image).resize(100, 180).png().toBuffer(), LIMITS);
    const reqs = [
      { patches: a.patches, gridThw: a.gridThw!, question: 'What modality is used to take this image?', params: { ...GREEDY, maxTokens: 6 } },
      { patches: b.patches, gridThw: b.gridThw!, question: 'Is the liver abnormal in this slice, and where exactly?', params: { ...GREEDY, maxTokens: 6 } },
    ];
    const together = await runtime.generateBatch(reqs);
    for (const [i, req] of reqs.entries()) {
      const [alone] = await runtime.generateBatch([req]);
      assert.equal(together[i]!.text, alone!.text);
      assert.equal(together[i]!.completionTokens, alone!.completionTokens);
    }
    assert.ok(together[0]!.promptTokens > 24 + 10);
    assert.equal(together[0]!.answer, together[0]!.text.trim());

    // a client's system prompt replaces the template's default system turn
    const system = 'You are a radiologist. Think in <think></think>, answer in <answer></answer>.';
    const [withSystem] = await runtime.generateBatch([{ ...reqs[0]!, systemPrompt: system }]);
    const source = { render: runtime.folder.chatTemplate.render.bind(runtime.folder.chatTemplate), encode: (t: string) => runtime.folder.tokenizer.encode(t) };
    const expected = buildPromptIds(source, questionTurns(reqs[0]!.question, 1, system), { imageTokenId: 508, imageTokenCounts: [24] });
    assert.equal(withSystem!.promptTokens, expected.length);
    assert.notEqual(withSystem!.promptTokens, together[0]!.promptTokens);
    // checkPrompt counts with the largest image the processor makes: max_pixels 20000 → 25 tokens
    assert.equal(runtime.checkPrompt(reqs[0]!.question), together[0]!.promptTokens - 24 + 25);
  });

  it('card: architecture, parameter count, dtype, weights sha256, source imported; graphs cached under the data dir and reused', async () => {
    const card = runtime.manifest;
    assert.equal(card.source, 'imported');
    assert.equal(card.architecture, 'Qwen2VLForConditionalGeneration');
    assert.equal(card.parameters, 227_712);
    assert.equal(card.dtype, 'float32');
    const { createHash } = await import('node:crypto');
    const sha = createHash('sha256')
      .update(await readFile(path.join(REFERENCE_DIR, 'model.safetensors')))
      .digest('hex');
    assert.equal(card.weights_sha256, sha);
    assert.deepEqual(await readdir(path.join(dataDir, GRAPH_CACHE_DIR)), [sha]);
    assert.ok(logs.includes('serving graphs built and cached'));
    const again = await loadQwen2VlRuntime(REFERENCE_DIR, { executionProviders: ['cpu'], intraOpThreads: 1, dataDir, log: (m) => logs.push(m) });
    try {
      assert.equal(logs.at(-1), 'serving graphs reused from the cache');
      const [x] = await again.generateBatch([{ patches: goldenPixels, gridThw: [1, 8, 12], question: 'x', params: { ...GREEDY, maxTokens: 3 } }]);
      const [y] = await runtime.generateBatch([{ patches: goldenPixels, gridThw: [1, 8, 12], question: 'x', params: { ...GREEDY, maxTokens: 3 } }]);
      assert.equal(x!.text, y!.text);
    } finally {
      await again.dispose();
    }
  });

  it('refuses an image of extreme aspect ratio as a bad upload (4xx), not a server error', async () => {
    const strip = await sharp({ create: { width: 402, height: 2, channels: 3, background: { r: 9, g: 9, b: 9 } } })
      .png()
      .toBuffer();
    await assert.rejects(
      runtime.prepareImage(strip, LIMITS),
      (e: unknown) => e instanceof ImageInputError && e.status === 422 && /aspect ratio above 200:1/.test(e.message),
    );
  });

  it('splits <think>…</think><answer>…</answer>; any other reply is all answer', () => {
    assert.deepEqual(splitReply('<think>The liver is dark.</think><answer>yes</answer>'), { reasoning: 'The liver is dark.', answer: 'yes' });
    assert.deepEqual(splitReply(' CT scan. '), { reasoning: '', answer: 'CT scan.' });
  });
});
