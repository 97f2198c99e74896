// M-RoPE positions of a Qwen2-VL prompt (transformers' Qwen2VLModel.get_rope_index) and how they
// advance while decoding. Three rows (temporal, height, width): text tokens have the same running
// index on all three; an image block of llm grid T × H/m × W/m gets (t, h, w) offset by the index
// where it starts, and the text after it continues at the block's max + 1.
//
// Batches are left-padded. As HF does with the attention mask, each row's positions are computed
// over its own tokens only; padding slots hold 1 (HF's fill value, never attended to). A row's
// rope_delta is max position + 1 − the padded length, so at cache index i (padding included) a
// decoding step's position is i + rope_delta on all three rows: the same positions the row gets
// alone. That is what keeps a batched row's tokens identical to the row alone.

export interface RopeIndexSpec {
  imageTokenId: number;
  visionStartTokenId: number;
  /** Vision spatial_merge_size: an image of grid h × w is (h/m) × (w/m) tokens. */
  spatialMergeSize: number;
}

export type GridThw = readonly [number, number, number];

export interface RowPositions {
  /** [3][n]: t, h and w positions of the row's own tokens. */
  positions: [Int32Array, Int32Array, Int32Array];
  /** max position + 1 − n (for a row alone; subtract the padding in a batch). */
  ropeDelta: number;
}

export interface BatchPositions {
  /** Padded length L of every row. */
  length: number;
  /** Left padding of each row. */
  padding: number[];
  /** [3, B, L] as the decoder's position_ids input wants it. */
  positionIds: BigInt64Array;
  /** [B, L]: 0 on padding, 1 on the row's tokens. */
  attentionMask: BigInt64Array;
  /** Per row: max position + 1 − L. */
  ropeDeltas: number[];
}

export class PromptLayoutError extends Error {
  override name = 'PromptLayoutError';
}

/** Positions of one row's tokens; `grids` are its images' image_grid_thw, in order. */
export function ropeIndex(ids: readonly number[], grids: readonly GridThw[], spec: RopeIndexSpec): RowPositions {
  const n = ids.length;
  const t = new Int32Array(n);
  const h = new Int32Array(n);
  const w = new Int32Array(n);
  let images = 0;
  for (let i = 0; i + 1 < n; i++) if (ids[i] === spec.visionStartTokenId && ids[i + 1] === spec.imageTokenId) images++;
  if (images !== grids.length) {
    throw new PromptLayoutError(`the prompt has ${images} image block(s) but ${grids.length} image(s) were given`);
  }
  let at = 0; // next token to place
  let next = 0; // max position so far + 1
  const text = (count: number) => {
    for (let k = 0; k < count; k++, at++) t[at] = h[at] = w[at] = next + k;
    next += count;
  };
  for (const [gt, gh, gw] of grids) {
    const start = ids.indexOf(spec.imageTokenId, at);
    text(start - at);
    const m = spec.spatialMergeSize;
    if (gh % m !== 0 || gw % m !== 0) throw new PromptLayoutError(`image grid ${gh}x${gw} is not a multiple of the merge size ${m}`);
    const lh = gh / m;
    const lw = gw / m;
    const count = gt * lh * lw;
    for (let k = 0; k < count; k++) {
      if (ids[at + k] !== spec.imageTokenId) {
        throw new PromptLayoutError(`an image of grid [${gt}, ${gh}, ${gw}] needs ${count} image tokens, the prompt has ${k} at position ${at}`);
      }
    }
    let max = next;
    for (let ti = 0; ti < gt; ti++) {
      for (let hi = 0; hi < lh; hi++) {
        for (let wi = 0; wi < lw; wi++, at++) {
          t[at] = next + ti;
          h[at] = next + hi;
          w[at] = next + wi;
          max = Math.max(max, t[at]!, h[at]!, w[at]!);
        }
      }
    }
    next = max + 1;
  }
  text(n - at);
  return { positions: [t, h, w], ropeDelta: next - n };
}

/** Left-pads the rows to one length and lays their positions out as [3, B, L]. */
export function batchRopeIndex(rows: readonly (readonly number[])[], grids: readonly (readonly GridThw[])[], spec: RopeIndexSpec): BatchPositions {
  const B = rows.length;
  const L = Math.max(...rows.map((r) => r.length));
  const positionIds = new BigInt64Array(3 * B * L).fill(1n);
  const attentionMask = new BigInt64Array(B * L);
  const padding: number[] = [];
  const ropeDeltas: number[] = [];
  rows.forEach((ids, b) => {
    const pad = L - ids.length;
    const { positions, ropeDelta } = ropeIndex(ids, grids[b] ?? [], spec);
    for (let axis = 0; axis < 3; axis++) {
      const base = (axis * B + b) * L + pad;
      for (let k = 0; k < ids.length; k++) positionIds[base + k] = BigInt(positions[axis]![k]!);
    }
    attentionMask.fill(1n, b * L + pad, (b + 1) * L);
    padding.push(pad);
    ropeDeltas.push(ropeDelta - pad);
  });
  return { length: L, padding, positionIds, attentionMask, ropeDeltas };
}

/** Position (on all three rows) of the token written at KV-cache index `cacheIndex`. */
export function decodePosition(cacheIndex: number, ropeDelta: number): number {
  return cacheIndex + ropeDelta;
}
