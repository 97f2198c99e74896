// A Qwen2-VL model written in the folder layout transformers.js (@huggingface/transformers) loads:
//   onnx/vision_encoder.onnx, onnx/embed_tokens.onnx, onnx/decoder_model_merged.onnx (fp32, no
//   file-name suffix), built from our own network definition; config.json in the flat public
//   layout (transformers.js reads the text sizes and token ids at the top level only, never from
//   text_config); generation_config.json, preprocessor_config.json and the tokenizer files.
// A graph whose weights pass protobuf's 2 GB limit goes out with its weights in `<file>_data` next
// to it, the one-chunk external-data name transformers.js asks for when config.json's
// `transformers.js_config.use_external_data_format` lists the file.
import { access, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeOnnx, type WriteOnnxOptions } from '../../graph/write-onnx.ts';
import type { Graph } from '../../graph/builder.ts';
import type { Qwen2VLConfig } from './config.ts';
import { SERVING_FILES, buildDecoderGraph, buildEmbedTokensGraph, buildVisionEncoderGraph } from './graphs.ts';
import type { Qwen2VLWeights } from './params.ts';

export class TransformersJsExportError extends Error {
  override name = 'TransformersJsExportError';
}

type Json = Record<string, unknown>;

/** Tokenizer files copied when the source has them; the first two are required. */
export const REQUIRED_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json'] as const;
export const OPTIONAL_TOKENIZER_FILES = ['chat_template.json', 'vocab.json', 'merges.txt', 'special_tokens_map.json', 'added_tokens.json'] as const;
export const PREPROCESSOR_FILE = 'preprocessor_config.json';
export const GENERATION_FILE = 'generation_config.json';

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * config.json in the public flat layout: a transformers v5 `text_config` is lifted to the top level
 * (its values win: v5 keeps only stale copies, if any, at the top) and dropped, `rope_parameters`
 * becomes the public `rope_scaling` + top-level `rope_theta`, and every field transformers.js reads
 * is written from the parsed config so it cannot disagree with the graphs.
 */
export function flatQwen2VLConfig(raw: Json, c: Qwen2VLConfig, externalDataFiles: readonly string[] = []): Json {
  const out: Json = { ...raw };
  if (isObject(raw.text_config)) {
    for (const [k, v] of Object.entries(raw.text_config)) {
      if (k !== 'model_type' && k !== 'architectures') out[k] = v;
    }
  }
  delete out.text_config;
  delete out.rope_parameters;
  const t = c.text;
  const v = c.vision;
  Object.assign(out, {
    architectures: ['Qwen2VLForConditionalGeneration'],
    model_type: 'qwen2_vl',
    hidden_size: t.hiddenSize,
    num_hidden_layers: t.numLayers,
    num_attention_heads: t.numHeads,
    num_key_value_heads: t.numKvHeads,
    intermediate_size: t.intermediateSize,
    vocab_size: t.vocabSize,
    rms_norm_eps: t.rmsNormEps,
    rope_theta: t.ropeTheta,
    rope_scaling: { type: 'mrope', mrope_section: [...t.mropeSection] },
    max_position_embeddings: t.maxPositionEmbeddings,
    tie_word_embeddings: t.tieWordEmbeddings,
    image_token_id: c.tokens.imageTokenId,
    video_token_id: c.tokens.videoTokenId,
    vision_start_token_id: c.tokens.visionStartTokenId,
    vision_end_token_id: c.tokens.visionEndTokenId,
    vision_config: { ...(isObject(raw.vision_config) ? raw.vision_config : {}), spatial_merge_size: v.spatialMergeSize },
  });
  if (c.tokens.bosTokenId !== null) out.bos_token_id = c.tokens.bosTokenId;
  if (c.tokens.eosTokenIds.length > 0) out.eos_token_id = c.tokens.eosTokenIds.length === 1 ? c.tokens.eosTokenIds[0] : [...c.tokens.eosTokenIds];
  const jsConfig: Json = { ...(isObject(raw['transformers.js_config']) ? raw['transformers.js_config'] : {}) };
  // Our graphs are float32 only: say so, so a plain from_pretrained does not look for a quantized file.
  jsConfig.dtype = 'fp32';
  if (externalDataFiles.length > 0) jsConfig.use_external_data_format = Object.fromEntries(externalDataFiles.map((f) => [f, 1]));
  else delete jsConfig.use_external_data_format;
  out['transformers.js_config'] = jsConfig;
  return out;
}

/**
 * The processor settings must describe the same patches the vision tower was built for; transformers.js
 * cuts pixel_values by them, and a mismatch would only show as a shape error deep in a session.
 */
export function checkPreprocessorConfig(pre: Json, c: Qwen2VLConfig, file = PREPROCESSOR_FILE): void {
  const v = c.vision;
  const expect: [string, number][] = [
    ['patch_size', v.patchSize],
    ['temporal_patch_size', v.temporalPatchSize],
    ['merge_size', v.spatialMergeSize],
  ];
  for (const [key, want] of expect) {
    if (pre[key] !== want) {
      throw new TransformersJsExportError(`${file}: "${key}" is ${JSON.stringify(pre[key])}, but config.json's vision_config needs ${want}`);
    }
  }
  const min = pre.min_pixels ?? (isObject(pre.size) ? pre.size.shortest_edge : undefined);
  const max = pre.max_pixels ?? (isObject(pre.size) ? pre.size.longest_edge : undefined);
  if (typeof min !== 'number' || typeof max !== 'number' || !(min > 0) || !(max >= min)) {
    throw new TransformersJsExportError(`${file}: needs "min_pixels" and "max_pixels" (or "size": {"shortest_edge", "longest_edge"}) with 0 < min ≤ max`);
  }
}

/** generation_config.json: the source's own, or one made from config.json's token ids (greedy, as HF's defaults). */
export function generationConfig(source: Json | undefined, c: Qwen2VLConfig): Json {
  if (source) return source;
  const out: Json = {};
  if (c.tokens.bosTokenId !== null) out.bos_token_id = c.tokens.bosTokenId;
  if (c.tokens.eosTokenIds.length > 0) out.eos_token_id = c.tokens.eosTokenIds.length === 1 ? c.tokens.eosTokenIds[0] : [...c.tokens.eosTokenIds];
  return out;
}

async function readOptionalJson(path: string): Promise<Json | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new TransformersJsExportError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (!isObject(parsed)) throw new TransformersJsExportError(`${path}: must hold a JSON object`);
  return parsed;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

export interface TransformersJsModel {
  /** The source folder: tokenizer, processor and generation files are taken from it. */
  sourceDir: string;
  /** The source config.json as parsed JSON (either layout). */
  rawConfig: Json;
  config: Qwen2VLConfig;
  /** HF names and layout, float32. Entries are dropped as the graphs that need them are written. */
  weights: Qwen2VLWeights;
}

export interface TransformersJsExport {
  dir: string;
  /** Paths of the files written, relative to `dir`. */
  files: string[];
  /** Graphs whose weights went to `<file>_data`. */
  externalData: string[];
}

/**
 * Writes the folder. The source's tokenizer and processor files are checked for presence and
 * agreement with config.json before any graph is built, so a wrong folder fails fast.
 */
export async function writeTransformersJsFolder(
  outDir: string,
  model: TransformersJsModel,
  opts: Pick<WriteOnnxOptions, 'externalData'> = {},
): Promise<TransformersJsExport> {
  const { sourceDir, config } = model;
  for (const f of REQUIRED_TOKENIZER_FILES) {
    if (!(await exists(join(sourceDir, f))))
      throw new TransformersJsExportError(`${join(sourceDir, f)}: missing (transformers.js needs ${REQUIRED_TOKENIZER_FILES.join(' and ')})`);
  }
  const pre = await readOptionalJson(join(sourceDir, PREPROCESSOR_FILE));
  if (!pre) throw new TransformersJsExportError(`${join(sourceDir, PREPROCESSOR_FILE)}: missing (the Qwen2-VL image processor settings)`);
  checkPreprocessorConfig(pre, config, join(sourceDir, PREPROCESSOR_FILE));
  const gen = generationConfig(await readOptionalJson(join(sourceDir, GENERATION_FILE)), config);

  await mkdir(join(outDir, 'onnx'), { recursive: true });
  const files: string[] = [];
  const externalData: string[] = [];
  const source = { kind: 'arrays', weights: model.weights } as const;
  // One graph at a time, so only one graph's transposed copies are alive at once; the vision and
  // embedding tensors are not needed by the decoder and are released once written.
  const graphs: [keyof typeof SERVING_FILES, () => Graph, string[]][] = [
    ['vision', () => buildVisionEncoderGraph(config, source), [...model.weights.keys()].filter((n) => n.startsWith('visual.'))],
    ['embed', () => buildEmbedTokensGraph(config, source), config.text.tieWordEmbeddings ? [] : ['model.embed_tokens.weight']],
    ['decoder', () => buildDecoderGraph(config, source, { logits: 'all', present: 'full' }), []],
  ];
  for (const [key, build, release] of graphs) {
    const name = SERVING_FILES[key];
    const written = await writeOnnx(join(outDir, 'onnx', name), build(), { externalData: opts.externalData ?? 'auto' });
    files.push(`onnx/${name}`);
    if (written.dataPath) {
      files.push(`onnx/${name}_data`);
      externalData.push(name);
    }
    for (const n of release) model.weights.delete(n);
  }

  const write = async (name: string, json: Json) => {
    await writeFile(join(outDir, name), `${JSON.stringify(json, null, 2)}\n`);
    files.push(name);
  };
  await write('config.json', flatQwen2VLConfig(model.rawConfig, config, externalData));
  await write(GENERATION_FILE, gen);
  await write(PREPROCESSOR_FILE, pre);
  for (const f of [...REQUIRED_TOKENIZER_FILES, ...OPTIONAL_TOKENIZER_FILES]) {
    if (await exists(join(sourceDir, f))) {
      await copyFile(join(sourceDir, f), join(outDir, f));
      files.push(f);
    }
  }
  return { dir: outDir, files, externalData };
}
