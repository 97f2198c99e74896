// A tiny Qwen2-VL (two text layers, GQA 2:1, untied head, 2×2 patches so a patch vector is short) and
// a left-padded batch of two rows whose images have different sizes: what the training-graph tests
// differentiate and compare with serving.
import { parseQwen2VLConfig, type Qwen2VLConfig } from '../../src/engine/architectures/qwen2-vl/config.ts';
import { qwen2VLParamTable, type Qwen2VLWeights } from '../../src/engine/architectures/qwen2-vl/params.ts';
import { batchRopeIndex, type GridThw } from '../../src/engine/architectures/qwen2-vl/rope-index.ts';
import { gaussian } from '../../src/engine/model/params.ts';
import { rng } from '../../src/engine/random.ts';

export const TINY_TRAIN_CONFIG_JSON = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  bos_token_id: 1,
  eos_token_id: 2,
  vision_start_token_id: 36,
  vision_end_token_id: 37,
  vision_token_id: 38,
  image_token_id: 39,
  video_token_id: 35,
  hidden_size: 24,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 20,
  vocab_size: 40,
  rms_norm_eps: 1e-6,
  max_position_embeddings: 512,
  tie_word_embeddings: false,
  rope_theta: 10000,
  rope_scaling: { type: 'mrope', mrope_section: [1, 1, 1] },
  vision_config: {
    depth: 2,
    embed_dim: 8,
    num_heads: 2,
    mlp_ratio: 2,
    hidden_size: 24,
    in_chans: 3,
    patch_size: 2,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
    hidden_act: 'quick_gelu',
  },
};

export function tinyTrainConfig(): Qwen2VLConfig {
  return parseQwen2VLConfig(TINY_TRAIN_CONFIG_JSON);
}

/** Random weights with norms off 1 and biases off 0, so every path carries a signal a check can see. */
export function tinyTrainWeights(c: Qwen2VLConfig, seed: number, scale = 0.4): Qwen2VLWeights {
  const normal = gaussian(rng(seed));
  const out: Qwen2VLWeights = new Map();
  for (const p of qwen2VLParamTable(c)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    out.set(
      p.name,
      Float32Array.from({ length: n }, () => (p.kind === 'norm' ? 1 + 0.2 * normal() : scale * normal())),
    );
  }
  return out;
}

export interface TinyBatch {
  B: number;
  S: number;
  inputIds: BigInt64Array;
  targets: BigInt64Array;
  attentionMask: BigInt64Array;
  positionIds: BigInt64Array;
  pixelValues: Float32Array;
  gridThw: BigInt64Array;
  imageMask: BigInt64Array;
  numPatches: number;
}

/** Two rows, one image each ([1,4,4] → 4 tokens, [1,2,4] → 2 tokens), different lengths (left padding). */
export function tinyTrainBatch(c: Qwen2VLConfig, seed = 5): TinyBatch {
  const tk = c.tokens;
  const grids: GridThw[] = [
    [1, 4, 4],
    [1, 2, 4],
  ];
  const m2 = c.vision.spatialMergeSize ** 2;
  const row = (grid: GridThw, text: number[], tail: number[]) => [
    3,
    ...text,
    tk.visionStartTokenId,
    ...new Array<number>((grid[0] * grid[1] * grid[2]) / m2).fill(tk.imageTokenId),
    tk.visionEndTokenId,
    ...tail,
  ];
  const rows = [row(grids[0]!, [4, 5, 6], [7, 8, 9, 10, 11]), row(grids[1]!, [12], [13, 14, 15])];
  const pos = batchRopeIndex(
    rows,
    grids.map((g) => [g]),
    { imageTokenId: tk.imageTokenId, visionStartTokenId: tk.visionStartTokenId, spatialMergeSize: c.vision.spatialMergeSize },
  );
  const B = rows.length;
  const S = pos.length;
  const inputIds = new BigInt64Array(B * S);
  const targets = new BigInt64Array(B * S);
  rows.forEach((ids, b) => {
    const pad = pos.padding[b]!;
    ids.forEach((id, k) => {
      inputIds[b * S + pad + k] = BigInt(id);
      targets[b * S + pad + k] = BigInt(k + 1 < ids.length ? ids[k + 1]! : tk.eosTokenIds[0]!);
    });
  });
  const numPatches = grids.reduce((n, [t, h, w]) => n + t * h * w, 0);
  const normal = gaussian(rng(seed));
  const pixelValues = Float32Array.from({ length: numPatches * c.vision.patchDim }, () => normal());
  return {
    B,
    S,
    inputIds,
    targets,
    attentionMask: pos.attentionMask,
    positionIds: pos.positionIds,
    pixelValues,
    gridThw: BigInt64Array.from(grids.flat().map(BigInt)),
    imageMask: inputIds.map((id) => (id === BigInt(tk.imageTokenId) ? 1n : 0n)),
    numPatches,
  };
}
