// The transformers.js export checked by transformers.js itself: the reference model exported by
// `npm run export:transformers-js`, loaded offline by @huggingface/transformers'
// Qwen2VLForConditionalGeneration, fed the golden inputs, generates the golden ids with every step's
// logits within 1e-3 of the golden step_logits (its own get_rope_index, rope_delta and KV cache
// drive our graphs, so an M-RoPE or cache-layout slip shows in the logits even when the ids survive).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { LogitsProcessor, LogitsProcessorList, Qwen2VLForConditionalGeneration, Tensor, env } from '@huggingface/transformers';
import { parseQwen2VLConfig } from '../../../../src/engine/architectures/qwen2-vl/config.ts';
import { readQwen2VLFolderF32 } from '../../../../src/engine/architectures/qwen2-vl/weights.ts';
import { readSafetensors } from '../../../../src/engine/export/safetensors.ts';
import {
  TransformersJsExportError,
  checkPreprocessorConfig,
  flatQwen2VLConfig,
  writeTransformersJsFolder,
} from '../../../../src/engine/architectures/qwen2-vl/transformers-js.ts';

const run = promisify(execFile);
const REFERENCE = resolve('../shared/reference/qwen2-vl-tiny');
const TOL = 1e-3;

env.allowRemoteModels = false;
env.allowLocalModels = true;

interface Golden {
  inputIds: number[];
  grid: number[][];
  generated: number[];
  pixelValues: { data: Float32Array; shape: number[] };
  stepLogits: Float32Array;
}

async function golden(): Promise<Golden> {
  const kase = JSON.parse(await readFile(join(REFERENCE, 'golden/case.json'), 'utf8'));
  const t = (await readSafetensors(join(REFERENCE, 'golden/tensors.safetensors'))).tensors;
  return {
    inputIds: kase.input_ids,
    grid: kase.image_grid_thw,
    generated: kase.generated_ids,
    pixelValues: { data: t.pixel_values.data as Float32Array, shape: t.pixel_values.shape },
    stepLogits: t.step_logits.data as Float32Array,
  };
}

/** Logits as transformers.js hands them to the sampler, one row per generated token. */
class CaptureLogits extends LogitsProcessor {
  readonly rows: Float32Array[] = [];
  override _call(_ids: bigint[][], logits: Tensor): Tensor {
    this.rows.push(Float32Array.from(logits.data as Float32Array));
    return logits;
  }
}

async function generateGolden(dir: string, g: Golden): Promise<{ ids: number[]; rows: Float32Array[] }> {
  const model = await Qwen2VLForConditionalGeneration.from_pretrained(dir, { dtype: 'fp32', local_files_only: true });
  try {
    const L = g.inputIds.length;
    const capture = new CaptureLogits();
    const processors = new LogitsProcessorList();
    processors.push(capture);
    const out = (await model.generate({
      input_ids: new Tensor('int64', BigInt64Array.from(g.inputIds, BigInt), [1, L]),
      attention_mask: new Tensor('int64', new BigInt64Array(L).fill(1n), [1, L]),
      pixel_values: new Tensor('float32', g.pixelValues.data, g.pixelValues.shape),
      image_grid_thw: new Tensor('int64', BigInt64Array.from(g.grid.flat(), BigInt), [g.grid.length, 3]),
      max_new_tokens: g.generated.length,
      do_sample: false,
      // The golden path is exactly 8 greedy steps; EOS is not special there.
      eos_token_id: null,
      logits_processor: processors,
    } as unknown as Parameters<typeof model.generate>[0])) as Tensor;
    const ids = (out.tolist() as bigint[][])[0].slice(L).map(Number);
    return { ids, rows: capture.rows };
  } finally {
    await model.dispose();
  }
}

function maxStepError(rows: Float32Array[], golden: Float32Array): number {
  const V = golden.length / rows.length;
  let m = 0;
  rows.forEach((row, s) => {
    assert.equal(row.length, V, `step ${s}: ${row.length} logits, expected ${V}`);
    for (let i = 0; i < V; i++) m = Math.max(m, Math.abs(row[i] - golden[s * V + i]));
  });
  return m;
}

test('export:transformers-js on qwen2-vl-tiny: transformers.js generates the golden ids, every step within 1e-3', async () => {
  const g = await golden();
  const root = await mkdtemp(join(tmpdir(), 'tjs-export-'));
  const out = join(root, 'qwen2-vl-tiny-tjs');
  try {
    await run(process.execPath, ['--import', 'tsx', 'scripts/export-transformers-js.ts', '--model', REFERENCE, '--out', out], { timeout: 60_000 });
    for (const f of [
      'onnx/vision_encoder.onnx',
      'onnx/embed_tokens.onnx',
      'onnx/decoder_model_merged.onnx',
      'config.json',
      'generation_config.json',
      'preprocessor_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
    ]) {
      assert.ok((await stat(join(out, f))).isFile(), `${f} written`);
    }
    const { ids, rows } = await generateGolden(out, g);
    assert.deepEqual(ids, g.generated);
    assert.equal(rows.length, g.generated.length);
    const err = maxStepError(rows, g.stepLogits);
    assert.ok(err <= TOL, `step logits max abs ${err} > ${TOL}`);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('weights as external data (<file>_data, listed in transformers.js_config): transformers.js loads them, same answers', async () => {
  const g = await golden();
  const { config, weights } = await readQwen2VLFolderF32(REFERENCE);
  const raw = JSON.parse(await readFile(join(REFERENCE, 'config.json'), 'utf8'));
  const root = await mkdtemp(join(tmpdir(), 'tjs-extdata-'));
  try {
    const written = await writeTransformersJsFolder(root, { sourceDir: REFERENCE, rawConfig: raw, config, weights }, { externalData: 'always' });
    assert.deepEqual(written.externalData, ['vision_encoder.onnx', 'embed_tokens.onnx', 'decoder_model_merged.onnx']);
    const jsConfig = JSON.parse(await readFile(join(root, 'config.json'), 'utf8'))['transformers.js_config'];
    assert.deepEqual(jsConfig.use_external_data_format, { 'vision_encoder.onnx': 1, 'embed_tokens.onnx': 1, 'decoder_model_merged.onnx': 1 });
    const { ids, rows } = await generateGolden(root, g);
    assert.deepEqual(ids, g.generated);
    assert.ok(maxStepError(rows, g.stepLogits) <= TOL);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('config.json: a transformers v5 layout comes out flat, with the fields transformers.js reads at the top level', async () => {
  const flat = JSON.parse(await readFile(join(REFERENCE, 'config.json'), 'utf8'));
  const textKeys = [
    'hidden_size',
    'num_hidden_layers',
    'num_attention_heads',
    'num_key_value_heads',
    'intermediate_size',
    'vocab_size',
    'rms_norm_eps',
    'max_position_embeddings',
    'hidden_act',
  ];
  const text_config: Record<string, unknown> = { model_type: 'qwen2_vl_text' };
  const v5: Record<string, unknown> = { ...flat, text_config };
  for (const k of textKeys) {
    text_config[k] = flat[k];
    delete v5[k];
  }
  text_config.rope_parameters = { rope_type: 'default', mrope_section: [2, 3, 3], rope_theta: 1e6 };
  delete v5.rope_scaling;
  delete v5.rope_theta;
  const c = parseQwen2VLConfig(v5);
  const out = flatQwen2VLConfig(v5, c);
  assert.equal(out.text_config, undefined);
  assert.equal(out.rope_parameters, undefined);
  for (const k of textKeys) assert.deepEqual(out[k], flat[k], k);
  assert.equal(out.model_type, 'qwen2_vl');
  assert.deepEqual(out.rope_scaling, { type: 'mrope', mrope_section: [2, 3, 3] });
  assert.equal(out.rope_theta, 1e6);
  assert.equal((out.vision_config as Record<string, unknown>).spatial_merge_size, 2);
  // The flat result parses to the same network.
  assert.deepEqual(parseQwen2VLConfig(out), parseQwen2VLConfig(flat));
});

test('a processor config that does not match the vision tower is refused before anything is written', async () => {
  const c = parseQwen2VLConfig(JSON.parse(await readFile(join(REFERENCE, 'config.json'), 'utf8')));
  const pre = JSON.parse(await readFile(join(REFERENCE, 'preprocessor_config.json'), 'utf8'));
  checkPreprocessorConfig(pre, c);
  assert.throws(
    () => checkPreprocessorConfig({ ...pre, merge_size: 1 }, c),
    (e: Error) => e instanceof TransformersJsExportError && /"merge_size" is 1.*needs 2/.test(e.message),
  );
  assert.throws(() => checkPreprocessorConfig({ ...pre, max_pixels: undefined }, c), /min_pixels/);
});

test('export:transformers-js refuses a model that is not Qwen2-VL (the shipped clinvqa-vlm packages) and a non-empty --out', async () => {
  const root = await mkdtemp(join(tmpdir(), 'tjs-refuse-'));
  try {
    const args = (model: string, out: string) => ['--import', 'tsx', 'scripts/export-transformers-js.ts', '--model', model, '--out', out];
    await assert.rejects(run(process.execPath, args('clinvqa-sft', join(root, 'a')), { timeout: 60_000 }), (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /"clinvqa-vlm" model; only Qwen2-VL/);
      return true;
    });
    await assert.rejects(run(process.execPath, args(REFERENCE, resolve('.')), { timeout: 60_000 }), (e: { stderr: string }) => /not empty/.test(e.stderr));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
