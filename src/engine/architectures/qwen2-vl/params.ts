// Qwen2-VL's parameters: the table (HF names as in the public checkpoint, HF shapes, which are LoRA
// targets) and the source a graph takes them from.
//
// Linear weights are stored [out, in] (PyTorch's layout). A graph multiplies x·Wᵀ, so it needs
// [in, out]: with weights as graph inputs (training) the graph transposes; with weights baked in
// (serving) they are transposed once here, so the serving graph holds exactly one copy of each.
import type { Graph, Value } from '../../graph/builder.ts';
import * as o from '../../graph/ops.ts';
import type { Qwen2VLConfig } from './config.ts';

export type ParamKind = 'linear' | 'bias' | 'norm' | 'embedding';

export interface Qwen2VLParam {
  /** The public checkpoint's name (`model.*`, `visual.*`, `lm_head.weight`). */
  name: string;
  /** HF shape; linears are [out, in] (the patch embed is [E, C, T, P, P], used as [E, C·T·P·P]). */
  shape: number[];
  kind: ParamKind;
  part: 'vision' | 'text';
  /** Attention and MLP projections of the transformer blocks, where LoRA adapters usually go. */
  loraTarget: boolean;
}

export function qwen2VLParamTable(c: Qwen2VLConfig): Qwen2VLParam[] {
  const v = c.vision;
  const t = c.text;
  const out: Qwen2VLParam[] = [];
  const add = (name: string, shape: number[], kind: ParamKind, part: 'vision' | 'text', loraTarget = false) =>
    out.push({ name, shape, kind, part, loraTarget });
  const E = v.embedDim;
  add('visual.patch_embed.proj.weight', [E, v.inChannels, v.temporalPatchSize, v.patchSize, v.patchSize], 'linear', 'vision');
  for (let i = 0; i < v.depth; i++) {
    const b = `visual.blocks.${i}`;
    add(`${b}.norm1.weight`, [E], 'norm', 'vision');
    add(`${b}.norm1.bias`, [E], 'bias', 'vision');
    add(`${b}.norm2.weight`, [E], 'norm', 'vision');
    add(`${b}.norm2.bias`, [E], 'bias', 'vision');
    add(`${b}.attn.qkv.weight`, [3 * E, E], 'linear', 'vision', true);
    add(`${b}.attn.qkv.bias`, [3 * E], 'bias', 'vision');
    add(`${b}.attn.proj.weight`, [E, E], 'linear', 'vision', true);
    add(`${b}.attn.proj.bias`, [E], 'bias', 'vision');
    add(`${b}.mlp.fc1.weight`, [v.mlpHidden, E], 'linear', 'vision', true);
    add(`${b}.mlp.fc1.bias`, [v.mlpHidden], 'bias', 'vision');
    add(`${b}.mlp.fc2.weight`, [E, v.mlpHidden], 'linear', 'vision', true);
    add(`${b}.mlp.fc2.bias`, [E], 'bias', 'vision');
  }
  const m2 = v.spatialMergeSize * v.spatialMergeSize * E;
  add('visual.merger.ln_q.weight', [E], 'norm', 'vision');
  add('visual.merger.ln_q.bias', [E], 'bias', 'vision');
  add('visual.merger.mlp.0.weight', [m2, m2], 'linear', 'vision');
  add('visual.merger.mlp.0.bias', [m2], 'bias', 'vision');
  add('visual.merger.mlp.2.weight', [v.outHidden, m2], 'linear', 'vision');
  add('visual.merger.mlp.2.bias', [v.outHidden], 'bias', 'vision');

  const H = t.hiddenSize;
  const kv = t.numKvHeads * t.headDim;
  add('model.embed_tokens.weight', [t.vocabSize, H], 'embedding', 'text');
  for (let i = 0; i < t.numLayers; i++) {
    const l = `model.layers.${i}`;
    add(`${l}.input_layernorm.weight`, [H], 'norm', 'text');
    add(`${l}.self_attn.q_proj.weight`, [H, H], 'linear', 'text', true);
    add(`${l}.self_attn.q_proj.bias`, [H], 'bias', 'text');
    add(`${l}.self_attn.k_proj.weight`, [kv, H], 'linear', 'text', true);
    add(`${l}.self_attn.k_proj.bias`, [kv], 'bias', 'text');
    add(`${l}.self_attn.v_proj.weight`, [kv, H], 'linear', 'text', true);
    add(`${l}.self_attn.v_proj.bias`, [kv], 'bias', 'text');
    add(`${l}.self_attn.o_proj.weight`, [H, H], 'linear', 'text', true);
    add(`${l}.post_attention_layernorm.weight`, [H], 'norm', 'text');
    add(`${l}.mlp.gate_proj.weight`, [t.intermediateSize, H], 'linear', 'text', true);
    add(`${l}.mlp.up_proj.weight`, [t.intermediateSize, H], 'linear', 'text', true);
    add(`${l}.mlp.down_proj.weight`, [H, t.intermediateSize], 'linear', 'text', true);
  }
  add('model.norm.weight', [H], 'norm', 'text');
  if (!t.tieWordEmbeddings) add('lm_head.weight', [t.vocabSize, H], 'linear', 'text');
  return out;
}

export function paramCount(c: Qwen2VLConfig): number {
  return qwen2VLParamTable(c).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** Weights by public name, float32, in HF layout (linears [out, in]). */
export type Qwen2VLWeights = Map<string, Float32Array>;

/** Where an initializer's bytes already lie in an ONNX external-data file. */
export interface ExternalRef {
  location: string;
  offset: number;
  length: number;
}

/**
 * Where a graph gets its parameters:
 *   inputs   — graph inputs in HF layout (training: new weights need no rebuild);
 *   arrays   — HF-layout arrays baked in as initializers (transposed here where needed);
 *   external — already written in serving layout to an external-data file (serving-layout.ts),
 *              so no weight bytes pass through the graph at all.
 */
export type WeightSource =
  | { kind: 'inputs' }
  | { kind: 'arrays'; weights: Qwen2VLWeights }
  | { kind: 'external'; refs: Map<string, ExternalRef> };

/** The name and shape a parameter has in serving layout (linears transposed to [in, out]). */
export function servingLayout(p: Qwen2VLParam): { name: string; shape: number[] } {
  if (p.kind !== 'linear') return { name: p.name, shape: p.shape };
  const out = p.shape[0];
  const inDim = p.shape.slice(1).reduce((a, b) => a * b, 1);
  return { name: `${p.name}.T`, shape: [inDim, out] };
}

/** [rows, cols] row-major → [cols, rows], in cache-friendly tiles. */
export function transpose2d(src: Float32Array, rows: number, cols: number, dst = new Float32Array(rows * cols)): Float32Array {
  const T = 64;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(rows, r0 + T);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(cols, c0 + T);
      for (let r = r0; r < r1; r++) {
        const base = r * cols;
        for (let c = c0; c < c1; c++) dst[c * rows + r] = src[base + c];
      }
    }
  }
  return dst;
}

/** Hands parameters to the network code in the layout it multiplies with. */
export class Qwen2VLParams {
  readonly table: Map<string, Qwen2VLParam>;
  /** Graph inputs created so far (inputs mode), in order of first use. */
  readonly inputs = new Map<string, Value>();
  private readonly made = new Map<string, Value>();

  constructor(
    readonly graph: Graph,
    readonly config: Qwen2VLConfig,
    private readonly source: WeightSource,
  ) {
    this.table = new Map(qwen2VLParamTable(config).map((p) => [p.name, p]));
  }

  private spec(name: string): Qwen2VLParam {
    const p = this.table.get(name);
    if (!p) throw new Error(`qwen2-vl: no parameter named ${name}`);
    return p;
  }

  private hfArray(p: Qwen2VLParam): Float32Array {
    if (this.source.kind !== 'arrays') throw new Error('unreachable');
    const w = this.source.weights.get(p.name);
    if (!w) throw new Error(`weights: ${p.name} is missing`);
    const n = p.shape.reduce((a, b) => a * b, 1);
    if (w.length !== n) throw new Error(`weights: ${p.name} has ${w.length} values, expected ${n} for [${p.shape.join(', ')}]`);
    return w;
  }

  private input(p: Qwen2VLParam): Value {
    let v = this.inputs.get(p.name);
    if (!v) {
      v = this.graph.input(p.name, this.graph.floatType, p.shape);
      this.inputs.set(p.name, v);
    }
    return v;
  }

  private baked(name: string, shape: number[], data: () => Float32Array): Value {
    const g = this.graph;
    if (this.source.kind === 'external') {
      const ref = this.source.refs.get(name);
      if (!ref) throw new Error(`external weights: ${name} is missing`);
      return g.externalInitializer(name, 'float32', shape, ref);
    }
    const d = data();
    return g.initializer(name, g.floatType, shape, g.floatType === 'float64' ? Float64Array.from(d) : d);
  }

  private memo(key: string, make: () => Value): Value {
    let v = this.made.get(key);
    if (!v) {
      v = make();
      this.made.set(key, v);
    }
    return v;
  }

  /** A linear weight as [in, out]. */
  linear(name: string): Value {
    const p = this.spec(name);
    if (p.kind !== 'linear') throw new Error(`${name} is not a linear weight`);
    const { name: sName, shape } = servingLayout(p);
    return this.memo(sName, () => {
      if (this.source.kind === 'inputs') {
        const w = this.input(p);
        return o.transpose(p.shape.length === 2 ? w : o.reshape(w, shape.slice().reverse()), [1, 0]);
      }
      return this.baked(sName, shape, () => transpose2d(this.hfArray(p), shape[1], shape[0]));
    });
  }

  /** A bias, norm weight or embedding table, as stored. */
  tensor(name: string): Value {
    const p = this.spec(name);
    if (p.kind === 'linear') throw new Error(`${name} is a linear weight; use linear()`);
    return this.memo(name, () => {
      if (this.source.kind === 'inputs') return this.input(p);
      return this.baked(name, p.shape, () => this.hfArray(p));
    });
  }

  /** The output head as [hidden, vocab]: lm_head, or the token embeddings when tied. */
  lmHead(): Value {
    const t = this.config.text;
    if (!t.tieWordEmbeddings) return this.linear('lm_head.weight');
    const shape = [t.hiddenSize, t.vocabSize];
    return this.memo('lm_head.tied.T', () => {
      if (this.source.kind === 'inputs') return o.transpose(this.tensor('model.embed_tokens.weight'), [1, 0]);
      return this.baked('lm_head.tied.T', shape, () => transpose2d(this.hfArray(this.spec('model.embed_tokens.weight')), t.vocabSize, t.hiddenSize));
    });
  }
}

/**
 * What a checkpoint folder must hold, by canonical name: the table's shapes, plus `lm_head.weight`
 * as optional when the embeddings are tied (some exporters write it anyway; it is not used).
 */
export function qwen2VLExpectedTensors(c: Qwen2VLConfig): Map<string, { shape: number[]; optional?: boolean }> {
  const out = new Map<string, { shape: number[]; optional?: boolean }>(qwen2VLParamTable(c).map((p) => [p.name, { shape: p.shape }]));
  if (c.text.tieWordEmbeddings) out.set('lm_head.weight', { shape: [c.text.vocabSize, c.text.hiddenSize], optional: true });
  return out;
}
