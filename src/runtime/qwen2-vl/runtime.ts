// A Hugging Face Qwen2-VL folder served as it is: the folder's config, tokenizer, chat template,
// processor settings and generation defaults; its weights checked against the parameter table and
// turned into serving graphs once, cached under the data directory by the weights' sha256 (never
// written into the folder), reused at every later start.
import { basename, join } from 'node:path';
import { parseQwen2VLConfig, type Qwen2VLConfig } from '../../engine/architectures/qwen2-vl/config.ts';
import { parseQwen2VlImageConfig, processRgbImage, type Qwen2VlImageConfig } from '../../engine/architectures/qwen2-vl/image-processor.ts';
import { qwen2VLParamTable } from '../../engine/architectures/qwen2-vl/params.ts';
import { buildPromptIds, questionTurns, type PromptSource } from '../../engine/architectures/qwen2-vl/prompt.ts';
import { qwen2VlCanonicalName } from '../../engine/architectures/qwen2-vl/weight-names.ts';
import { openSession } from '../../engine/ort/session.ts';
import { parseCompletion } from '../../data/grounded-trace.ts';
import { HfFolderError } from '../../hf/errors.ts';
import { PREPROCESSOR_CONFIG_FILE, readHfFolder, type HfFolder } from '../../hf/folder.ts';
import { inspectWeights, type ExpectedTable, type ExpectedTensor } from '../../hf/weights.ts';
import { ImageInputError } from '../../preprocess/errors.ts';
import { decodeNativeRgb, type DecodeLimits } from '../../preprocess/image.ts';
import { PromptTooLongError } from '../prompt.ts';
import type { InferenceRequest, InferenceResult, ModelRuntime, PreparedImage } from '../types.ts';
import { generateQwen2Vl, type Qwen2VlServingSessions } from './generate.ts';
import { servingGraphsFor } from './graph-cache.ts';

/** Longest reply a request may ask for. */
export const QWEN2VL_MAX_NEW_TOKENS = 1024;
export const QWEN2VL_DEFAULT_MAX_BATCH = 8;
/** transformers' smart_resize limit. */
const MAX_ASPECT_RATIO = 200;

export interface Qwen2VlRuntimeOptions {
  executionProviders: string[];
  intraOpThreads?: number;
  /** Serving graphs are cached under `<dataDir>/graph-cache/`. */
  dataDir: string;
  maxBatch?: number;
  /** Log lines about the load (cache hit or build); never request data. */
  log?(message: string, fields?: Record<string, unknown>): void;
}

// Names as torch_dtype spells them, for the model card.
const DTYPE_NAMES: Record<string, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

/** The parameter table as the loader's expected table; a tied lm_head may be present or not. */
export function qwen2VlExpectedTable(c: Qwen2VLConfig): ExpectedTable {
  const table = new Map<string, ExpectedTensor>(qwen2VLParamTable(c).map((p) => [p.name, { shape: p.shape }]));
  if (c.text.tieWordEmbeddings) table.set('lm_head.weight', { shape: [c.text.vocabSize, c.text.hiddenSize], optional: true });
  return table;
}

/** `<think>…</think><answer>…</answer>` when the model wrote it so; otherwise the whole text is the answer. */
export function splitReply(text: string): { reasoning: string; answer: string } {
  const parsed = parseCompletion(text);
  return parsed.wellFormed ? { reasoning: parsed.reasoning, answer: parsed.answer } : { reasoning: '', answer: text.trim() };
}

export class Qwen2VlRuntime implements ModelRuntime {
  private readonly prompt: PromptSource;

  constructor(
    readonly id: string,
    readonly manifest: Record<string, unknown>,
    readonly folder: HfFolder,
    readonly config: Qwen2VLConfig,
    readonly imageProcessor: Qwen2VlImageConfig,
    private readonly sessions: Qwen2VlServingSessions,
    readonly executionProvider: string,
    readonly maxBatch: number,
  ) {
    this.prompt = {
      render: (turns, opts) => folder.chatTemplate.render(turns, opts),
      encode: (text) => folder.tokenizer.encode(text),
    };
  }

  /**
   * Prompt tokens `question` takes with the largest image this processor makes (the image is not
   * known yet when the server asks); throws when that leaves no room to answer in the context.
   */
  checkPrompt(question: string): number {
    const factor = this.imageProcessor.patchSize * this.imageProcessor.mergeSize;
    const largestImage = Math.floor(this.imageProcessor.maxPixels / (factor * factor));
    const ids = buildPromptIds(this.prompt, questionTurns(question, 1), { imageTokenId: this.config.tokens.imageTokenId, imageTokenCounts: [largestImage] });
    const context = this.config.text.maxPositionEmbeddings;
    if (ids.length >= context) throw new PromptTooLongError(this.id, ids.length, context - 1);
    return ids.length;
  }

  async prepareImage(bytes: Uint8Array, limits: DecodeLimits): Promise<PreparedImage> {
    // The processor composites transparency onto white (Pillow's convert to RGB after RGBA).
    const decoded = await decodeNativeRgb(bytes, limits, 'white');
    const ratio = Math.max(decoded.width, decoded.height) / Math.min(decoded.width, decoded.height);
    if (ratio > MAX_ASPECT_RATIO) {
      // smart_resize refuses these too: the short side would shrink below one patch.
      throw new ImageInputError(
        'image_unreadable',
        `Image of ${decoded.width}x${decoded.height} pixels: an aspect ratio above ${MAX_ASPECT_RATIO}:1 is not supported.`,
      );
    }
    const processed = await processRgbImage(this.imageProcessor, decoded.rgb, decoded.width, decoded.height);
    return { patches: processed.pixelValues, gridThw: processed.gridThw };
  }

  async generateBatch(reqs: InferenceRequest[]): Promise<InferenceResult[]> {
    if (reqs.length === 0) return [];
    if (reqs.length > this.maxBatch) throw new Error(`batch of ${reqs.length} exceeds maxBatch ${this.maxBatch}`);
    const m2 = this.config.vision.spatialMergeSize ** 2;
    const rows = reqs.map((r, b) => {
      if (!r.gridThw) throw new Error(`request ${b}: no image grid; images for ${this.id} must come from its prepareImage`);
      const [t, h, w] = r.gridThw;
      return {
        promptIds: buildPromptIds(this.prompt, questionTurns(r.question, 1, r.systemPrompt), {
          imageTokenId: this.config.tokens.imageTokenId,
          imageTokenCounts: [(t * h * w) / m2],
        }),
        pixelValues: r.patches,
        grids: [r.gridThw],
        sampling: { temperature: r.params.temperature, topP: r.params.topP },
        maxTokens: Math.max(1, Math.min(QWEN2VL_MAX_NEW_TOKENS, Math.floor(r.params.maxTokens))),
        ...(r.params.seed !== undefined ? { seed: r.params.seed } : {}),
      };
    });
    const generation = this.folder.generation;
    const padId = generation.padTokenId ?? this.folder.tokenizer.specialTokens.pad?.id ?? generation.eosTokenIds[0] ?? 0;
    const out = await generateQwen2Vl(this.sessions, rows, { stopIds: generation.eosTokenIds, padId });
    return out.rows.map((g, b) => {
      const stopped = g.finishReason === 'stop';
      // The embedding may have more rows than the tokenizer has tokens (Qwen2-VL: 151,936 vs 151,657);
      // an id past the tokenizer decodes to nothing, as HF's tokenizers skip ids they do not know.
      const known = (stopped ? g.tokens.slice(0, -1) : g.tokens).filter((id) => id < this.folder.tokenizer.vocabSize);
      const text = this.folder.tokenizer.decode(known, { skipSpecial: true });
      return {
        text,
        ...splitReply(text),
        promptTokens: rows[b]!.promptIds.length,
        completionTokens: g.tokens.length,
        finishReason: g.finishReason,
        timings: { visionMs: out.visionMs, decodeMs: out.decodeMs },
      };
    });
  }

  async dispose(): Promise<void> {
    await Promise.all([this.sessions.vision.release(), this.sessions.embed.release(), this.sessions.decoder.release()]);
  }
}

/** Loads the Qwen2-VL folder `dir`; every problem with the folder is an error naming its file. */
export async function loadQwen2VlRuntime(dir: string, opts: Qwen2VlRuntimeOptions): Promise<Qwen2VlRuntime> {
  const folder = await readHfFolder(dir);
  const configPath = join(dir, 'config.json');
  let config: Qwen2VLConfig;
  try {
    config = parseQwen2VLConfig(folder.config, configPath);
  } catch (error) {
    throw new HfFolderError((error as Error).message, configPath);
  }
  const preprocessorPath = join(dir, PREPROCESSOR_CONFIG_FILE);
  if (!folder.preprocessor) throw new HfFolderError(`${preprocessorPath}: missing file (the image processor's settings)`, preprocessorPath);
  let imageProcessor: Qwen2VlImageConfig;
  try {
    imageProcessor = parseQwen2VlImageConfig(folder.preprocessor, preprocessorPath);
  } catch (error) {
    throw new HfFolderError((error as Error).message, preprocessorPath);
  }
  if (
    imageProcessor.patchSize !== config.vision.patchSize ||
    imageProcessor.mergeSize !== config.vision.spatialMergeSize ||
    imageProcessor.temporalPatchSize !== config.vision.temporalPatchSize
  ) {
    throw new HfFolderError(
      `${preprocessorPath}: patch_size ${imageProcessor.patchSize} / merge_size ${imageProcessor.mergeSize} / temporal_patch_size ${imageProcessor.temporalPatchSize} ` +
        `disagree with config.json's vision_config (${config.vision.patchSize} / ${config.vision.spatialMergeSize} / ${config.vision.temporalPatchSize})`,
      preprocessorPath,
    );
  }
  if (folder.tokenizer.vocabSize > config.text.vocabSize) {
    throw new HfFolderError(
      `${join(dir, 'tokenizer.json')}: ${folder.tokenizer.vocabSize} tokens, but the model has ${config.text.vocabSize} embeddings`,
      join(dir, 'tokenizer.json'),
    );
  }
  const expected = qwen2VlExpectedTable(config);
  const weightOpts = { expected, canonicalName: qwen2VlCanonicalName };
  const inspected = await inspectWeights(dir, weightOpts);
  const graphs = await servingGraphsFor(dir, config, inspected.sha256, weightOpts, opts);
  const sessionOpts = { executionProviders: opts.executionProviders, ...(opts.intraOpThreads !== undefined ? { intraOpThreads: opts.intraOpThreads } : {}) };
  const vision = await openSession(graphs.vision, sessionOpts);
  const embed = await openSession(graphs.embed, sessionOpts);
  const decoder = await openSession(graphs.decoder, sessionOpts);
  const architecture = Array.isArray(folder.config.architectures) ? folder.config.architectures[0] : 'Qwen2VLForConditionalGeneration';
  const card = {
    id: basename(dir),
    source: 'imported',
    architecture,
    model_type: config.modelType,
    parameters: inspected.parameterCount,
    dtype: inspected.dtypes.map((d) => DTYPE_NAMES[d] ?? d).join(', '),
    weights_sha256: inspected.sha256,
    weight_files: inspected.files,
    weight_bytes: inspected.fileBytes,
    chat_template: basename(folder.chatTemplate.source),
    eos_token_ids: folder.generation.eosTokenIds,
  };
  return new Qwen2VlRuntime(
    basename(dir),
    card,
    folder,
    config,
    imageProcessor,
    { config, vision: vision.session, embed: embed.session, decoder: decoder.session },
    decoder.provider,
    opts.maxBatch ?? QWEN2VL_DEFAULT_MAX_BATCH,
  );
}
