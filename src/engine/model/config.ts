// The model family's hyper-parameters and its named presets. `tiny` exists for tests; `small` is
// what ships (its size was chosen by measuring validation accuracy against CPU latency).
export interface TransformerConfig {
  dim: number;
  layers: number;
  heads: number;
  /** Hidden width of the MLP as a multiple of `dim`. */
  mlpRatio: number;
}

export interface ModelConfig {
  family: 'clinvqa-vlm';
  preset: string;
  imageSize: number;
  patchSize: number;
  channels: 3;
  /** Per-channel normalisation applied after scaling pixels to [0, 1]. */
  imageMean: [number, number, number];
  imageStd: [number, number, number];
  vision: TransformerConfig;
  text: TransformerConfig & { vocabSize: number; maxPositions: number };
  layerNormEps: number;
}

export function numPatches(c: ModelConfig): number {
  return (c.imageSize / c.patchSize) ** 2;
}

export function patchDim(c: ModelConfig): number {
  return c.patchSize * c.patchSize * c.channels;
}

const IMAGE_NORM = { imageMean: [0.5, 0.5, 0.5] as [number, number, number], imageStd: [0.25, 0.25, 0.25] as [number, number, number] };

export const PRESETS: Record<string, Omit<ModelConfig, 'text'> & { text: Omit<ModelConfig['text'], 'vocabSize'> }> = {
  tiny: {
    family: 'clinvqa-vlm',
    preset: 'tiny',
    imageSize: 32,
    patchSize: 8,
    channels: 3,
    ...IMAGE_NORM,
    vision: { dim: 16, layers: 1, heads: 2, mlpRatio: 2 },
    text: { dim: 16, layers: 2, heads: 2, mlpRatio: 2, maxPositions: 96 },
    layerNormEps: 1e-5,
  },
  // Size-sweep candidates around `small` (scripts/size-sweep.ts compares them on validation
  // accuracy and single-answer CPU latency; README "Choosing the small preset" has the figures).
  mini: {
    family: 'clinvqa-vlm',
    preset: 'mini',
    imageSize: 96,
    patchSize: 16,
    channels: 3,
    ...IMAGE_NORM,
    vision: { dim: 96, layers: 1, heads: 4, mlpRatio: 4 },
    text: { dim: 128, layers: 2, heads: 4, mlpRatio: 4, maxPositions: 192 },
    layerNormEps: 1e-5,
  },
  base: {
    family: 'clinvqa-vlm',
    preset: 'base',
    imageSize: 128,
    patchSize: 16,
    channels: 3,
    ...IMAGE_NORM,
    vision: { dim: 192, layers: 4, heads: 4, mlpRatio: 4 },
    text: { dim: 256, layers: 4, heads: 4, mlpRatio: 4, maxPositions: 256 },
    layerNormEps: 1e-5,
  },
  // 96 px / 16 px patches = 36 image tokens. Sized so a grounded answer (~30 tokens) comes back
  // well under 300 ms on a 2-core CPU and an SFT epoch over both datasets takes minutes, not hours.
  small: {
    family: 'clinvqa-vlm',
    preset: 'small',
    imageSize: 96,
    patchSize: 16,
    channels: 3,
    ...IMAGE_NORM,
    vision: { dim: 128, layers: 2, heads: 4, mlpRatio: 4 },
    text: { dim: 192, layers: 4, heads: 4, mlpRatio: 4, maxPositions: 192 },
    layerNormEps: 1e-5,
  },
};

export function presetConfig(name: string, vocabSize: number, overrides: Partial<ModelConfig> = {}): ModelConfig {
  const p = PRESETS[name];
  if (!p) throw new Error(`unknown preset ${name} (known: ${Object.keys(PRESETS).join(', ')})`);
  return { ...p, ...overrides, text: { ...p.text, vocabSize, ...(overrides.text ?? {}) } } as ModelConfig;
}

export function validateConfig(c: ModelConfig): void {
  if (c.imageSize % c.patchSize) throw new Error('imageSize must be a multiple of patchSize');
  for (const t of [c.vision, c.text]) {
    if (t.dim % t.heads) throw new Error('dim must be a multiple of heads');
  }
  if (c.text.maxPositions < numPatches(c) + 8) throw new Error('maxPositions too small for the image prefix');
}
