// npm run check:transformers-js -- [--model <HF Qwen2-VL folder>] [--data <jsonl>] [--limit N] [--steps N]
// Where transformers.js (the peer) and we differ on the parts around the network, measured on the
// same folder: the model exported for transformers.js and the folder itself run through our own
// pieces (image processor, chat template + tokenizer, get_rope_index, greedy KV-cache decoding on
// our serving graphs). Per validation question (image + question):
//   prompt ids (template, tokenizer, image-token expansion) equal?  image_grid_thw equal?
//   pixel_values: max / mean |ours − theirs|;  greedy ids equal?  step logits max |ours − theirs|
//   (and again with our pixel_values fed to transformers.js, which leaves only the network side)
// then the reference image against the golden (Pillow) pixel_values, and one text-only prompt
// (rope_delta: Hugging Face's max+1−len against transformers.js's max+1+len).
// Defaults: ../shared/reference/qwen2-vl-tiny, the first 50 SLAKE validation questions, 8 steps.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AutoProcessor, LogitsProcessor, LogitsProcessorList, Qwen2VLForConditionalGeneration, RawImage, Tensor, env } from '@huggingface/transformers';
import { parseQwen2VLConfig } from '../src/engine/architectures/qwen2-vl/config.ts';
import { buildQwen2VLServingGraphs } from '../src/engine/architectures/qwen2-vl/graphs.ts';
import { parseQwen2VlImageConfig, processRgbImage, type ProcessedImage } from '../src/engine/architectures/qwen2-vl/image-processor.ts';
import { buildPromptIds, questionTurns } from '../src/engine/architectures/qwen2-vl/prompt.ts';
import { qwen2VLParamTable } from '../src/engine/architectures/qwen2-vl/params.ts';
import { ropeIndex } from '../src/engine/architectures/qwen2-vl/rope-index.ts';
import { embedIds, encodeImages, greedyDecode, mergeImageFeatures, openQwen2VLSessions } from '../src/engine/architectures/qwen2-vl/sessions.ts';
import { qwen2VlCanonicalName } from '../src/engine/architectures/qwen2-vl/weight-names.ts';
import { readSafetensors } from '../src/engine/export/safetensors.ts';
import { writeTransformersJsFolder } from '../src/engine/architectures/qwen2-vl/transformers-js.ts';
import { readHfFolder } from '../src/hf/folder.ts';
import { loadWeights } from '../src/hf/weights.ts';
import { decodeNativeRgb } from '../src/preprocess/image.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: '../shared/reference/qwen2-vl-tiny' },
    data: { type: 'string', default: '../shared/data/slake/validation.jsonl' },
    limit: { type: 'string', default: '50' },
    steps: { type: 'string', default: '8' },
  },
});
env.allowRemoteModels = false;
const modelDir = resolve(values.model);
const steps = Number(values.steps);
const LIMITS = { maxBytes: 64 << 20, maxInputPixels: 100_000_000 };

// ---- ours ----
const folder = await readHfFolder(modelDir);
const config = parseQwen2VLConfig(folder.config, join(modelDir, 'config.json'));
const expected = new Map(qwen2VLParamTable(config).map((p) => [p.name, { shape: p.shape }]));
const { weights } = await loadWeights(modelDir, { expected, canonicalName: qwen2VlCanonicalName });
const sessions = await openQwen2VLSessions(config, buildQwen2VLServingGraphs(config, { kind: 'arrays', weights }));
const imageConfig = parseQwen2VlImageConfig(folder.preprocessor ?? {}, join(modelDir, 'preprocessor_config.json'));
const promptSource = { render: folder.chatTemplate.render.bind(folder.chatTemplate), encode: folder.tokenizer.encode.bind(folder.tokenizer) };
const spec = {
  imageTokenId: config.tokens.imageTokenId,
  visionStartTokenId: config.tokens.visionStartTokenId,
  spatialMergeSize: config.vision.spatialMergeSize,
};

async function oursImage(bytes: Uint8Array): Promise<ProcessedImage> {
  const d = await decodeNativeRgb(bytes, LIMITS, 'white');
  return processRgbImage(imageConfig, d.rgb, d.width, d.height);
}

async function oursGenerate(ids: number[], image: ProcessedImage | null): Promise<{ ids: number[]; logits: Float32Array }> {
  const embeds = await embedIds(sessions, ids);
  if (image) mergeImageFeatures(embeds, ids, (await encodeImages(sessions, image.pixelValues, [image.gridThw])).features, config);
  const pos = ropeIndex(ids, image ? [image.gridThw] : [], spec);
  const r = await greedyDecode(
    sessions,
    embeds,
    pos.positions.map((row) => [...row]),
    pos.ropeDelta,
    steps,
  );
  return { ids: r.ids, logits: r.stepLogits };
}

// ---- theirs: the same folder exported, loaded by transformers.js ----
const tmp = await mkdtemp(join(tmpdir(), 'tjs-check-'));
const exportWeights = (await loadWeights(modelDir, { expected, canonicalName: qwen2VlCanonicalName })).weights;
await writeTransformersJsFolder(tmp, { sourceDir: modelDir, rawConfig: folder.config, config, weights: exportWeights });
const processor = await AutoProcessor.from_pretrained(tmp, { local_files_only: true });
const model = await Qwen2VLForConditionalGeneration.from_pretrained(tmp, { dtype: 'fp32', local_files_only: true });

class Capture extends LogitsProcessor {
  rows: Float32Array[] = [];
  override _call(_ids: bigint[][], logits: Tensor): Tensor {
    this.rows.push(Float32Array.from(logits.data as Float32Array));
    return logits;
  }
}

async function theirsGenerate(inputs: Record<string, unknown>): Promise<{ ids: number[]; logits: Float32Array }> {
  const capture = new Capture();
  const list = new LogitsProcessorList();
  list.push(capture);
  const out = (await model.generate({ ...inputs, max_new_tokens: steps, do_sample: false, eos_token_id: null, logits_processor: list } as never)) as Tensor;
  const L = (inputs.input_ids as Tensor).dims.at(-1)!;
  const logits = new Float32Array(capture.rows.reduce((n, r) => n + r.length, 0));
  capture.rows.forEach((r, i) => logits.set(r, i * r.length));
  return { ids: (out.tolist() as bigint[][])[0].slice(L).map(Number), logits };
}

function diff(a: Float32Array, b: Float32Array): { max: number; mean: number } {
  if (a.length !== b.length) return { max: Number.NaN, mean: Number.NaN };
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.length };
}

const fmt = (x: number) => (Number.isNaN(x) ? 'n/a' : x < 1e-3 ? x.toExponential(1) : x.toFixed(3));

try {
  // 1. Validation questions, image + question, end to end.
  const lines = (await readFile(values.data, 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .slice(0, Number(values.limit));
  let sameIds = 0;
  let sameGrid = 0;
  let sameGreedy = 0;
  let pvMax = 0;
  let pvMeanSum = 0;
  let logitMax = 0;
  let sameGreedyOurPixels = 0;
  let logitMaxOurPixels = 0;
  let compared = 0;
  for (const line of lines) {
    const rec = JSON.parse(line) as { image: string; question: string };
    const bytes = new Uint8Array(await readFile(join(dirname(values.data), rec.image)));
    const ours = await oursImage(bytes);
    const ourIds = buildPromptIds(promptSource, questionTurns(rec.question, 1), {
      imageTokenId: config.tokens.imageTokenId,
      imageTokenCounts: [ours.numImageTokens],
    });
    const conversation = [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: rec.question }] }];
    const text = processor.apply_chat_template(conversation as never, { add_generation_prompt: true }) as string;
    const inputs = await processor(text, await RawImage.fromBlob(new Blob([bytes])));
    const theirIds = ((inputs.input_ids as Tensor).tolist() as bigint[][])[0].map(Number);
    const theirGrid = ((inputs.image_grid_thw as Tensor).tolist() as bigint[][])[0].map(Number);
    if (theirIds.length === ourIds.length && theirIds.every((v, i) => v === ourIds[i])) sameIds++;
    if (theirGrid.every((v, i) => v === ours.gridThw[i])) sameGrid++;
    const pv = diff(ours.pixelValues, (inputs.pixel_values as Tensor).data as Float32Array);
    pvMax = Math.max(pvMax, pv.max);
    pvMeanSum += pv.mean;
    const a = await oursGenerate(ourIds, ours);
    const b = await theirsGenerate(inputs);
    if (a.ids.every((v, i) => v === b.ids[i])) sameGreedy++;
    logitMax = Math.max(logitMax, diff(a.logits, b.logits).max);
    // The same request with our pixel_values fed to transformers.js: what is left is the network,
    // the positions and the cache, so any difference above float32 noise is not the resize.
    const c = await theirsGenerate({ ...inputs, pixel_values: new Tensor('float32', ours.pixelValues, [ours.numPatches, ours.patchDim]) });
    if (a.ids.every((v, i) => v === c.ids[i])) sameGreedyOurPixels++;
    logitMaxOurPixels = Math.max(logitMaxOurPixels, diff(a.logits, c.logits).max);
    compared++;
  }
  console.log(`validation questions: ${compared} (${values.data})`);
  console.log(`  prompt ids equal (template + tokenizer + image tokens): ${sameIds}/${compared}`);
  console.log(`  image_grid_thw equal: ${sameGrid}/${compared}`);
  console.log(`  pixel_values ours vs theirs: max ${fmt(pvMax)}, mean ${fmt(pvMeanSum / compared)}`);
  console.log(`  greedy ${steps} ids equal: ${sameGreedy}/${compared}; step logits max |ours - theirs| ${fmt(logitMax)}`);
  console.log(`  same, transformers.js fed our pixel_values: ids equal ${sameGreedyOurPixels}/${compared}; step logits max ${fmt(logitMaxOurPixels)}`);

  // 2. The reference image against the golden (Pillow) pixel_values.
  const goldenDir = join(modelDir, 'golden');
  const golden = await readSafetensors(join(goldenDir, 'tensors.safetensors')).catch(() => undefined);
  if (golden) {
    const png = new Uint8Array(await readFile(join(goldenDir, 'image.png')));
    const gpv = golden.tensors.pixel_values.data as Float32Array;
    const ours = await oursImage(png);
    const theirs = await processor.image_processor!(await RawImage.fromBlob(new Blob([png])));
    const o = diff(ours.pixelValues, gpv);
    const t = diff((theirs.pixel_values as Tensor).data as Float32Array, gpv);
    console.log(`golden image.png vs Pillow pixel_values: ours max ${fmt(o.max)} mean ${fmt(o.mean)}; transformers.js max ${fmt(t.max)} mean ${fmt(t.mean)}`);
  }

  // 3. A text-only prompt: positions and rope_delta.
  const question = 'What modality is used to take this image?';
  const ids = buildPromptIds(promptSource, [{ role: 'user', content: question }], { imageTokenId: config.tokens.imageTokenId, imageTokenCounts: [] });
  const ourPos = ropeIndex(ids, [], spec);
  const L = ids.length;
  const idsTensor = new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, L]);
  const mask = new Tensor('int64', new BigInt64Array(L).fill(1n), [1, L]);
  const [, theirDelta] = (model as unknown as { get_rope_index(i: Tensor, g: null, v: null, m: Tensor): [Tensor, Tensor] }).get_rope_index(
    idsTensor,
    null,
    null,
    mask,
  );
  const a = await oursGenerate(ids, null);
  const b = await theirsGenerate({ input_ids: idsTensor, attention_mask: mask });
  const V = config.text.vocabSize;
  console.log(
    `text-only prompt (${L} tokens): rope_delta ours ${ourPos.ropeDelta} (Hugging Face: max+1-len), transformers.js ${Number((theirDelta.data as BigInt64Array)[0])}; ` +
      `prefill logits max diff ${fmt(diff(a.logits.subarray(0, V), b.logits.subarray(0, V)).max)}, decode steps max diff ${fmt(diff(a.logits.subarray(V), b.logits.subarray(V)).max)}, ` +
      `greedy ids ${a.ids.every((v, i) => v === b.ids[i]) ? 'equal' : `differ (ours ${a.ids.join(',')} / theirs ${b.ids.join(',')})`}`,
  );
} finally {
  await model.dispose();
  await rm(tmp, { recursive: true, force: true });
}
