// The KV cache of one batched generation, kept on the JS side in preallocated buffers that the
// decoder reads as its past without any copy (onnxruntime-node wraps an input's Float32Array as it
// is; measured: a 64 MB input costs nothing). Each buffer is [B, H, cap, Dh]; the slots not yet
// written (and padding) are masked in the step's attention bias, so the graph reads all `cap` slots
// and ignores the unwritten ones. ORT needs a contiguous [B, H, P, Dh] input, which a prefix of
// this layout is not, so instead of feeding exactly the written length the capacity grows in
// chunks: reading a few masked slots costs far less than copying the cache every step (measured,
// small preset, batch 16: a step costs ~1.1 ms + ~8 µs per cached slot), and sizing for the run's
// max_tokens up front would make every step pay for answers that stop early.
import type * as ortTypes from 'onnxruntime-node';
import { MASKED } from '../engine/model/serving-io.ts';
import { f32 } from '../engine/ort/session.ts';

export interface KvSlotsShape {
  batch: number;
  heads: number;
  headDim: number;
  /** How many buffers: two (key, value) per layer. */
  buffers: number;
  /** Positions the run can ever cache; the capacity never grows past this. */
  maxSlots: number;
  /** Slots added per growth. */
  chunk: number;
}

export class KvSlots {
  /** Slots written so far (the same for every row: finished rows keep being fed padding). */
  length = 0;
  cap = 0;
  private data: Float32Array[] = [];
  /** [B, cap + 1]: per row, the cap slots (0 once written unless padding) then the fed token itself. */
  private biasData = new Float32Array(0);
  private tensors: ortTypes.Tensor[] = [];
  private biasTensor: ortTypes.Tensor | null = null;
  /** Slots that stay masked for good (left padding), per row. */
  private readonly masked: Set<number>[];

  constructor(private readonly s: KvSlotsShape) {
    this.masked = Array.from({ length: s.batch }, () => new Set<number>());
  }

  /** Marks slot `k` of row `b` as padding: masked even once written. Call before appending it. */
  maskForever(b: number, k: number): void {
    this.masked[b].add(k);
  }

  /**
   * Writes the keys/values of the next `S` positions: `fresh[i]` is buffer i's [B, H, S, Dh] (the
   * decoder's new_key_values outputs, in buffer order). Grows the capacity first when needed.
   */
  append(fresh: Float32Array[], S: number): void {
    const { batch: B, heads, headDim, buffers } = this.s;
    if (fresh.length !== buffers) throw new Error(`kv slots: ${fresh.length} buffers given, ${buffers} expected`);
    const run = S * headDim;
    fresh.forEach((f, i) => {
      if (f.length !== B * heads * run) throw new Error(`kv slots: buffer ${i} holds ${f.length} values, expected ${B * heads * run}`);
    });
    if (this.length + S > this.cap) this.grow(this.length + S);
    fresh.forEach((f, i) => {
      const dst = this.data[i];
      for (let bh = 0; bh < B * heads; bh++) dst.set(f.subarray(bh * run, (bh + 1) * run), (bh * this.cap + this.length) * headDim);
    });
    for (let b = 0; b < B; b++) {
      for (let k = this.length; k < this.length + S; k++) if (!this.masked[b].has(k)) this.biasData[b * (this.cap + 1) + k] = 0;
    }
    this.length += S;
  }

  /** Makes room for `S` more positions now, so past() and cap already describe the next append. */
  reserve(S: number): void {
    if (this.length + S > this.cap) this.grow(this.length + S);
  }

  /** Buffer i as the decoder's past [B, H, cap, Dh] (valid until the next append). */
  past(i: number): ortTypes.Tensor {
    return this.tensors[i];
  }

  /** The attention bias [B, 1, 1, cap + 1] of a one-token step (valid until the next append). */
  stepBias(): ortTypes.Tensor {
    return this.biasTensor!;
  }

  private grow(needed: number): void {
    const { batch: B, heads, headDim, maxSlots, chunk } = this.s;
    if (needed > maxSlots) throw new Error(`kv slots: ${needed} positions exceed the run's ${maxSlots}`);
    const cap = Math.min(maxSlots, needed + chunk);
    const keep = this.length * headDim;
    this.data = Array.from({ length: this.s.buffers }, (_, i) => {
      const next = new Float32Array(B * heads * cap * headDim);
      const old = this.data[i];
      if (old) for (let bh = 0; bh < B * heads; bh++) next.set(old.subarray(bh * this.cap * headDim, bh * this.cap * headDim + keep), bh * cap * headDim);
      return next;
    });
    const bias = new Float32Array(B * (cap + 1)).fill(MASKED);
    for (let b = 0; b < B; b++) {
      bias.set(this.biasData.subarray(b * (this.cap + 1), b * (this.cap + 1) + this.length), b * (cap + 1));
      bias[b * (cap + 1) + cap] = 0; // the fed token attends to itself
    }
    this.biasData = bias;
    this.cap = cap;
    this.tensors = this.data.map((d) => f32(d, [B, heads, cap, headDim]));
    this.biasTensor = f32(bias, [B, 1, 1, cap + 1]);
  }
}
