// Qwen2-VL's config.json, in both layouts Hugging Face has written:
//   public (transformers 4.x): text fields at the top level, "vision_config" nested,
//     "rope_scaling": {"type": "mrope", "mrope_section": [...]}, "rope_theta" at the top level;
//   transformers v5: text fields under "text_config", "rope_parameters" instead of "rope_scaling",
//     "rope_theta" possibly inside "rope_parameters".
// Every size the network needs is read here; nothing else in the architecture reads config.json.

export interface Qwen2VLVisionConfig {
  depth: number;
  embedDim: number;
  numHeads: number;
  headDim: number;
  /** fc1 width = int(embedDim * mlpRatio). */
  mlpHidden: number;
  inChannels: number;
  patchSize: number;
  temporalPatchSize: number;
  spatialMergeSize: number;
  /** The merger's output width (the text model's hidden size). */
  outHidden: number;
  /** Length of one patch vector: channels × temporal × patch × patch (1176 for 3×2×14×14). */
  patchDim: number;
  layerNormEps: number;
}

export interface Qwen2VLTextConfig {
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  vocabSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** As written in the config (t, h, w); the rotary layout uses it doubled. */
  mropeSection: number[];
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
}

export interface Qwen2VLTokenIds {
  imageTokenId: number;
  videoTokenId: number;
  visionStartTokenId: number;
  visionEndTokenId: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

export interface Qwen2VLConfig {
  modelType: 'qwen2_vl';
  text: Qwen2VLTextConfig;
  vision: Qwen2VLVisionConfig;
  tokens: Qwen2VLTokenIds;
}

export class Qwen2VLConfigError extends Error {
  override name = 'Qwen2VLConfigError';
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads fields from a list of places (first hit wins) and names the field in every error. */
class Fields {
  constructor(
    private readonly file: string,
    private readonly scopes: { prefix: string; obj: Json }[],
  ) {}

  private find(key: string): { path: string; value: unknown } | undefined {
    for (const s of this.scopes) {
      if (Object.hasOwn(s.obj, key) && s.obj[key] !== null && s.obj[key] !== undefined) {
        return { path: `${s.prefix}${key}`, value: s.obj[key] };
      }
    }
    return undefined;
  }

  private where(key: string): string {
    return this.scopes.map((s) => `"${s.prefix}${key}"`).join(' or ');
  }

  /** `key` is a field name (resolved to where it was found) or a path already resolved. */
  fail(key: string, msg: string): never {
    const path = key.includes('.') ? key : (this.find(key)?.path ?? `${this.scopes[0].prefix}${key}`);
    throw new Qwen2VLConfigError(`${this.file}: field "${path}" ${msg}`);
  }

  posInt(key: string, fallback?: number): number {
    const f = this.find(key);
    if (!f) {
      if (fallback !== undefined) return fallback;
      throw new Qwen2VLConfigError(`${this.file}: field ${this.where(key)} is missing`);
    }
    if (typeof f.value !== 'number' || !Number.isInteger(f.value) || f.value <= 0) {
      this.fail(f.path, `must be a positive integer, got ${JSON.stringify(f.value)}`);
    }
    return f.value;
  }

  posNumber(key: string, fallback?: number): number {
    const f = this.find(key);
    if (!f) {
      if (fallback !== undefined) return fallback;
      throw new Qwen2VLConfigError(`${this.file}: field ${this.where(key)} is missing`);
    }
    if (typeof f.value !== 'number' || !Number.isFinite(f.value) || f.value <= 0) {
      this.fail(f.path, `must be a positive number, got ${JSON.stringify(f.value)}`);
    }
    return f.value;
  }

  bool(key: string, fallback: boolean): boolean {
    const f = this.find(key);
    if (!f) return fallback;
    if (typeof f.value !== 'boolean') this.fail(f.path, `must be true or false, got ${JSON.stringify(f.value)}`);
    return f.value;
  }

  tokenId(key: string): number {
    const f = this.find(key);
    if (!f) throw new Qwen2VLConfigError(`${this.file}: field ${this.where(key)} is missing`);
    if (typeof f.value !== 'number' || !Number.isInteger(f.value) || f.value < 0) {
      this.fail(f.path, `must be a token id (non-negative integer), got ${JSON.stringify(f.value)}`);
    }
    return f.value;
  }

  optionalTokenIds(key: string): number[] {
    const f = this.find(key);
    if (!f) return [];
    const list = Array.isArray(f.value) ? f.value : [f.value];
    for (const id of list) {
      if (typeof id !== 'number' || !Number.isInteger(id) || id < 0) {
        this.fail(f.path, `must be a token id or a list of token ids, got ${JSON.stringify(f.value)}`);
      }
    }
    return list as number[];
  }

  object(key: string): { path: string; value: Json } | undefined {
    const f = this.find(key);
    if (!f) return undefined;
    if (!isObject(f.value)) this.fail(f.path, `must be an object, got ${JSON.stringify(f.value)}`);
    return { path: f.path, value: f.value };
  }

  string(key: string): string | undefined {
    const f = this.find(key);
    if (!f) return undefined;
    if (typeof f.value !== 'string') this.fail(f.path, `must be a string, got ${JSON.stringify(f.value)}`);
    return f.value;
  }
}

export function isQwen2VLConfig(raw: unknown): boolean {
  if (!isObject(raw)) return false;
  const archs = Array.isArray(raw.architectures) ? raw.architectures : [];
  return raw.model_type === 'qwen2_vl' || archs.includes('Qwen2VLForConditionalGeneration');
}

/** Parses a config.json object (already JSON-parsed); `file` names it in errors. */
export function parseQwen2VLConfig(raw: unknown, file = 'config.json'): Qwen2VLConfig {
  if (!isObject(raw)) throw new Qwen2VLConfigError(`${file}: must hold a JSON object`);
  if (!isQwen2VLConfig(raw)) {
    throw new Qwen2VLConfigError(
      `${file}: unsupported architecture (model_type ${JSON.stringify(raw.model_type)}, architectures ${JSON.stringify(raw.architectures)}); expected model_type "qwen2_vl" / Qwen2VLForConditionalGeneration`,
    );
  }
  const top = { prefix: '', obj: raw };
  let textScopes = [top];
  if (raw.text_config !== undefined && raw.text_config !== null) {
    if (!isObject(raw.text_config)) throw new Qwen2VLConfigError(`${file}: field "text_config" must be an object`);
    textScopes = [{ prefix: 'text_config.', obj: raw.text_config }, top];
  }
  const t = new Fields(file, textScopes);
  if (!isObject(raw.vision_config)) throw new Qwen2VLConfigError(`${file}: field "vision_config" is missing or not an object`);
  const v = new Fields(file, [{ prefix: 'vision_config.', obj: raw.vision_config }]);

  // ---- text ----
  const hiddenSize = t.posInt('hidden_size');
  const numHeads = t.posInt('num_attention_heads');
  const numKvHeads = t.posInt('num_key_value_heads', numHeads);
  if (hiddenSize % numHeads !== 0) t.fail('hidden_size', `(${hiddenSize}) must be divisible by num_attention_heads (${numHeads})`);
  if (numHeads % numKvHeads !== 0) t.fail('num_key_value_heads', `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  const headDim = hiddenSize / numHeads;
  const explicitHeadDim = t.posInt('head_dim', headDim);
  if (explicitHeadDim !== headDim) t.fail('head_dim', `(${explicitHeadDim}) must equal hidden_size / num_attention_heads (${headDim}) for Qwen2-VL`);

  const rope = t.object('rope_parameters') ?? t.object('rope_scaling');
  if (!rope) {
    throw new Qwen2VLConfigError(`${file}: field "rope_scaling" (or "rope_parameters", or "text_config.rope_parameters") with "mrope_section" is missing`);
  }
  const ropeFields = new Fields(file, [{ prefix: `${rope.path}.`, obj: rope.value }]);
  const ropeType = ropeFields.string('rope_type') ?? ropeFields.string('type') ?? 'default';
  if (ropeType !== 'mrope' && ropeType !== 'default') {
    ropeFields.fail(
      rope.value.rope_type !== undefined ? 'rope_type' : 'type',
      `is ${JSON.stringify(ropeType)}; only "mrope"/"default" rotary embeddings are supported`,
    );
  }
  const section = rope.value.mrope_section;
  if (!Array.isArray(section) || section.length !== 3 || !section.every((s) => Number.isInteger(s) && s > 0)) {
    throw new Qwen2VLConfigError(`${file}: field "${rope.path}.mrope_section" must be three positive integers (t, h, w), got ${JSON.stringify(section)}`);
  }
  const mropeSection = section as number[];
  if (2 * (mropeSection[0] + mropeSection[1] + mropeSection[2]) !== headDim) {
    throw new Qwen2VLConfigError(
      `${file}: field "${rope.path}.mrope_section" ${JSON.stringify(mropeSection)} sums to ${mropeSection.reduce((a, b) => a + b, 0)}, but twice that must equal the head dim ${headDim}`,
    );
  }
  const ropeTheta = ropeFields.posNumber('rope_theta', t.posNumber('rope_theta', 10000));

  const text: Qwen2VLTextConfig = {
    hiddenSize,
    numLayers: t.posInt('num_hidden_layers'),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: t.posInt('intermediate_size'),
    vocabSize: t.posInt('vocab_size'),
    rmsNormEps: t.posNumber('rms_norm_eps', 1e-6),
    ropeTheta,
    mropeSection: [...mropeSection],
    maxPositionEmbeddings: t.posInt('max_position_embeddings', 32768),
    tieWordEmbeddings: t.bool('tie_word_embeddings', false),
  };
  const act = t.string('hidden_act') ?? 'silu';
  if (act !== 'silu') t.fail('hidden_act', `is ${JSON.stringify(act)}; Qwen2-VL's decoder uses "silu"`);

  // ---- vision ----
  const embedDim = v.posInt('embed_dim');
  const visionHeads = v.posInt('num_heads');
  if (embedDim % visionHeads !== 0) v.fail('embed_dim', `(${embedDim}) must be divisible by num_heads (${visionHeads})`);
  const visionHeadDim = embedDim / visionHeads;
  if (visionHeadDim % 4 !== 0) v.fail('num_heads', `gives a head dim of ${visionHeadDim}; the 2-D rotary embedding needs a multiple of 4`);
  const mlpRatio = v.posNumber('mlp_ratio', 4);
  const inChannels = v.posInt('in_channels', v.posInt('in_chans', 3));
  const patchSize = v.posInt('patch_size', 14);
  const temporalPatchSize = v.posInt('temporal_patch_size', 2);
  const visionAct = v.string('hidden_act') ?? 'quick_gelu';
  if (visionAct !== 'quick_gelu') v.fail('hidden_act', `is ${JSON.stringify(visionAct)}; Qwen2-VL's vision tower uses "quick_gelu"`);
  const outHidden = v.posInt('hidden_size', hiddenSize);
  if (outHidden !== hiddenSize) {
    v.fail('hidden_size', `(${outHidden}) is the merger's output and must equal the text hidden_size (${hiddenSize})`);
  }
  const vision: Qwen2VLVisionConfig = {
    depth: v.posInt('depth'),
    embedDim,
    numHeads: visionHeads,
    headDim: visionHeadDim,
    mlpHidden: Math.trunc(embedDim * mlpRatio),
    inChannels,
    patchSize,
    temporalPatchSize,
    spatialMergeSize: v.posInt('spatial_merge_size', 2),
    outHidden,
    patchDim: inChannels * temporalPatchSize * patchSize * patchSize,
    layerNormEps: 1e-6,
  };

  // ---- token ids (top level in both layouts; text_config as a fallback) ----
  const ids = new Fields(file, [top, ...textScopes.filter((s) => s !== top)]);
  const bos = ids.optionalTokenIds('bos_token_id');
  const tokens: Qwen2VLTokenIds = {
    imageTokenId: ids.tokenId('image_token_id'),
    videoTokenId: ids.tokenId('video_token_id'),
    visionStartTokenId: ids.tokenId('vision_start_token_id'),
    visionEndTokenId: ids.tokenId('vision_end_token_id'),
    bosTokenId: bos.length ? bos[0] : null,
    eosTokenIds: ids.optionalTokenIds('eos_token_id'),
  };
  for (const [name, id] of Object.entries(tokens)) {
    if (typeof id === 'number' && id >= text.vocabSize) {
      throw new Qwen2VLConfigError(`${file}: token id ${name} = ${id} is outside the vocabulary (vocab_size ${text.vocabSize})`);
    }
  }
  return { modelType: 'qwen2_vl', text, vision, tokens };
}
