// A straightforward float64 Qwen2-VL in plain loops, written from the reference README (not from
// the graph code): per-frame attention over explicit cu_seqlens instead of a mask, patch positions
// from the nested reshape loops instead of index arithmetic, repeated kv heads, no cache. The shape
// tests compare the serving graphs against it on configurations other than the shared reference.
import type { Qwen2VLConfig } from '../../../../src/engine/architectures/qwen2-vl/config.ts';
import type { Qwen2VLWeights } from '../../../../src/engine/architectures/qwen2-vl/params.ts';

type M = Float64Array; // row-major [rows, cols]

function w(W: Qwen2VLWeights, name: string): Float64Array {
  const x = W.get(name);
  if (!x) throw new Error(`reference: ${name} missing`);
  return Float64Array.from(x);
}

/** x [n, in] · Wᵀ (W [out, in]) + b */
function lin(x: M, n: number, inDim: number, W: Float64Array, outDim: number, b?: Float64Array): M {
  const y = new Float64Array(n * outDim);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outDim; o++) {
      let s = b ? b[o] : 0;
      for (let k = 0; k < inDim; k++) s += x[i * inDim + k] * W[o * inDim + k];
      y[i * outDim + o] = s;
    }
  }
  return y;
}

function layerNorm(x: M, n: number, d: number, g: Float64Array, b: Float64Array, eps: number): M {
  const y = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let mean = 0;
    for (let k = 0; k < d; k++) mean += x[i * d + k];
    mean /= d;
    let v = 0;
    for (let k = 0; k < d; k++) v += (x[i * d + k] - mean) ** 2;
    v /= d;
    for (let k = 0; k < d; k++) y[i * d + k] = ((x[i * d + k] - mean) / Math.sqrt(v + eps)) * g[k] + b[k];
  }
  return y;
}

function rmsNorm(x: M, n: number, d: number, g: Float64Array, eps: number): M {
  const y = new Float64Array(n * d);
  for (let i = 0; i < n; i++) {
    let ms = 0;
    for (let k = 0; k < d; k++) ms += x[i * d + k] ** 2;
    const r = 1 / Math.sqrt(ms / d + eps);
    for (let k = 0; k < d; k++) y[i * d + k] = x[i * d + k] * r * g[k];
  }
  return y;
}

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse; use a series / continued fraction with double accuracy.
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 60; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction (Lentz) for larger |x|
  let f = t;
  let C = t;
  let D = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    D = t + an * D;
    D = 1 / D;
    C = t + an / C;
    const delta = C * D;
    f *= delta;
  }
  const erfc = Math.exp(-t * t) / Math.sqrt(Math.PI) / f;
  return Math.sign(x) * (1 - erfc);
}

/** rotate q/k rows of `heads` heads of size d by angles emb [d] per row. */
function rope(x: M, rows: number, heads: number, d: number, emb: (row: number, j: number) => number): void {
  for (let r = 0; r < rows; r++) {
    for (let h = 0; h < heads; h++) {
      const base = (r * heads + h) * d;
      const orig = x.slice(base, base + d);
      for (let j = 0; j < d; j++) {
        const rot = j < d / 2 ? -orig[j + d / 2] : orig[j - d / 2];
        const a = emb(r, j);
        x[base + j] = orig[j] * Math.cos(a) + rot * Math.sin(a);
      }
    }
  }
}

/** pixels [N, patchDim] (merge-grouped), grid [[t,h,w],...] → features [N/m², hidden]. */
export function referenceVision(c: Qwen2VLConfig, W: Qwen2VLWeights, pixels: Float32Array, grid: number[][]): Float64Array {
  const v = c.vision;
  const E = v.embedDim;
  const N = pixels.length / v.patchDim;
  const m = v.spatialMergeSize;
  let x = lin(Float64Array.from(pixels), N, v.patchDim, w(W, 'visual.patch_embed.proj.weight'), E);
  // positions from the nested loops of the processor's reshape, and per-frame segments
  const rows: number[] = [];
  const cols: number[] = [];
  const segments: [number, number][] = [];
  for (const [t, h, wd] of grid) {
    for (let f = 0; f < t; f++) {
      segments.push([rows.length, rows.length + h * wd]);
      for (let bh = 0; bh < h / m; bh++)
        for (let bw = 0; bw < wd / m; bw++)
          for (let ih = 0; ih < m; ih++)
            for (let iw = 0; iw < m; iw++) {
              rows.push(bh * m + ih);
              cols.push(bw * m + iw);
            }
    }
  }
  const d = v.headDim;
  const inv: number[] = [];
  for (let i = 0; i < d / 2; i += 2) inv.push(1 / 10000 ** (i / (d / 2)));
  const q4 = d / 4;
  const emb = (n: number, j: number) => {
    const k = j % (d / 2);
    return k < q4 ? rows[n] * inv[k] : cols[n] * inv[k - q4];
  };
  for (let b = 0; b < v.depth; b++) {
    const p = `visual.blocks.${b}`;
    const h1 = layerNorm(x, N, E, w(W, `${p}.norm1.weight`), w(W, `${p}.norm1.bias`), 1e-6);
    const qkv = lin(h1, N, E, w(W, `${p}.attn.qkv.weight`), 3 * E, w(W, `${p}.attn.qkv.bias`));
    const q = new Float64Array(N * E);
    const k = new Float64Array(N * E);
    const vv = new Float64Array(N * E);
    for (let n = 0; n < N; n++) {
      q.set(qkv.subarray(n * 3 * E, n * 3 * E + E), n * E);
      k.set(qkv.subarray(n * 3 * E + E, n * 3 * E + 2 * E), n * E);
      vv.set(qkv.subarray(n * 3 * E + 2 * E, n * 3 * E + 3 * E), n * E);
    }
    rope(q, N, v.numHeads, d, emb);
    rope(k, N, v.numHeads, d, emb);
    const ctx = new Float64Array(N * E);
    for (const [s0, s1] of segments) {
      for (let hh = 0; hh < v.numHeads; hh++) {
        for (let i = s0; i < s1; i++) {
          const sc: number[] = [];
          for (let j = s0; j < s1; j++) {
            let s = 0;
            for (let e = 0; e < d; e++) s += q[i * E + hh * d + e] * k[j * E + hh * d + e];
            sc.push(s / Math.sqrt(d));
          }
          const mx = Math.max(...sc);
          const ex = sc.map((s) => Math.exp(s - mx));
          const z = ex.reduce((a, b2) => a + b2, 0);
          for (let j = s0; j < s1; j++) for (let e = 0; e < d; e++) ctx[i * E + hh * d + e] += (ex[j - s0] / z) * vv[j * E + hh * d + e];
        }
      }
    }
    const att = lin(ctx, N, E, w(W, `${p}.attn.proj.weight`), E, w(W, `${p}.attn.proj.bias`));
    for (let i = 0; i < x.length; i++) x[i] += att[i];
    const h2 = layerNorm(x, N, E, w(W, `${p}.norm2.weight`), w(W, `${p}.norm2.bias`), 1e-6);
    const f1 = lin(h2, N, E, w(W, `${p}.mlp.fc1.weight`), v.mlpHidden, w(W, `${p}.mlp.fc1.bias`));
    for (let i = 0; i < f1.length; i++) f1[i] = f1[i] / (1 + Math.exp(-1.702 * f1[i]));
    const f2 = lin(f1, N, v.mlpHidden, w(W, `${p}.mlp.fc2.weight`), E, w(W, `${p}.mlp.fc2.bias`));
    for (let i = 0; i < x.length; i++) x[i] += f2[i];
  }
  x = layerNorm(x, N, E, w(W, 'visual.merger.ln_q.weight'), w(W, 'visual.merger.ln_q.bias'), 1e-6);
  const G = m * m * E;
  const n4 = N / (m * m);
  const h = lin(x, n4, G, w(W, 'visual.merger.mlp.0.weight'), G, w(W, 'visual.merger.mlp.0.bias'));
  for (let i = 0; i < h.length; i++) h[i] = 0.5 * h[i] * (1 + erf(h[i] / Math.SQRT2));
  return lin(h, n4, G, w(W, 'visual.merger.mlp.2.weight'), v.outHidden, w(W, 'visual.merger.mlp.2.bias'));
}

/** get_rope_index for one unpadded row of ids with images (no video): positions [3][L] and rope_delta. */
export function referenceRopeIndex(c: Qwen2VLConfig, ids: number[], grid: number[][]): { positions: number[][]; ropeDelta: number } {
  const m = c.vision.spatialMergeSize;
  const pos: number[][] = [[], [], []];
  let next = 0;
  let img = 0;
  let i = 0;
  while (i < ids.length) {
    if (ids[i] === c.tokens.imageTokenId) {
      const [t, h, wd] = grid[img++];
      const gh = h / m;
      const gw = wd / m;
      const st = next;
      for (let a = 0; a < t; a++)
        for (let b = 0; b < gh; b++)
          for (let e = 0; e < gw; e++) {
            pos[0].push(st + a);
            pos[1].push(st + b);
            pos[2].push(st + e);
          }
      i += t * gh * gw;
      next = Math.max(...pos[0], ...pos[1], ...pos[2]) + 1;
    } else {
      for (const r of pos) r.push(next);
      next++;
      i++;
    }
  }
  const max = Math.max(...pos[0], ...pos[1], ...pos[2]);
  return { positions: pos, ropeDelta: max + 1 - ids.length };
}

/** Full forward (no cache): embeds [L, H] with positions [3][L] → logits [L, V]. */
export function referenceText(c: Qwen2VLConfig, W: Qwen2VLWeights, embeds: Float64Array, positions: number[][]): M {
  const t = c.text;
  const H = t.hiddenSize;
  const L = positions[0].length;
  const hd = t.headDim;
  const kvDim = t.numKvHeads * hd;
  const inv: number[] = [];
  for (let i = 0; i < hd; i += 2) inv.push(1 / t.ropeTheta ** (i / hd));
  const sec = [...t.mropeSection, ...t.mropeSection];
  const rowOf: number[] = [];
  sec.forEach((len, i) => {
    for (let k = 0; k < len; k++) rowOf.push(i % 3);
  });
  const emb = (r: number, j: number) => positions[rowOf[j]][r] * inv[j % (hd / 2)];
  let x: M = Float64Array.from(embeds);
  for (let l = 0; l < t.numLayers; l++) {
    const p = `model.layers.${l}`;
    const h1 = rmsNorm(x, L, H, w(W, `${p}.input_layernorm.weight`), t.rmsNormEps);
    const q = lin(h1, L, H, w(W, `${p}.self_attn.q_proj.weight`), H, w(W, `${p}.self_attn.q_proj.bias`));
    const k = lin(h1, L, H, w(W, `${p}.self_attn.k_proj.weight`), kvDim, w(W, `${p}.self_attn.k_proj.bias`));
    const v = lin(h1, L, H, w(W, `${p}.self_attn.v_proj.weight`), kvDim, w(W, `${p}.self_attn.v_proj.bias`));
    rope(q, L, t.numHeads, hd, emb);
    rope(k, L, t.numKvHeads, hd, emb);
    const rep = t.numHeads / t.numKvHeads;
    const ctx = new Float64Array(L * H);
    for (let hh = 0; hh < t.numHeads; hh++) {
      const kv = Math.floor(hh / rep);
      for (let i = 0; i < L; i++) {
        const sc: number[] = [];
        for (let j = 0; j <= i; j++) {
          let s = 0;
          for (let e = 0; e < hd; e++) s += q[i * H + hh * hd + e] * k[j * kvDim + kv * hd + e];
          sc.push(s / Math.sqrt(hd));
        }
        const mx = Math.max(...sc);
        const ex = sc.map((s) => Math.exp(s - mx));
        const z = ex.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= i; j++) for (let e = 0; e < hd; e++) ctx[i * H + hh * hd + e] += (ex[j] / z) * v[j * kvDim + kv * hd + e];
      }
    }
    const o = lin(ctx, L, H, w(W, `${p}.self_attn.o_proj.weight`), H);
    for (let i = 0; i < x.length; i++) x[i] += o[i];
    const h2 = rmsNorm(x, L, H, w(W, `${p}.post_attention_layernorm.weight`), t.rmsNormEps);
    const g = lin(h2, L, H, w(W, `${p}.mlp.gate_proj.weight`), t.intermediateSize);
    const u = lin(h2, L, H, w(W, `${p}.mlp.up_proj.weight`), t.intermediateSize);
    for (let i = 0; i < g.length; i++) g[i] = (g[i] / (1 + Math.exp(-g[i]))) * u[i];
    const dn = lin(g, L, t.intermediateSize, w(W, `${p}.mlp.down_proj.weight`), H);
    for (let i = 0; i < x.length; i++) x[i] += dn[i];
  }
  x = rmsNorm(x, L, H, w(W, 'model.norm.weight'), t.rmsNormEps);
  const head = t.tieWordEmbeddings ? w(W, 'model.embed_tokens.weight') : w(W, 'lm_head.weight');
  return lin(x, L, H, head, t.vocabSize);
}

export function referenceEmbed(c: Qwen2VLConfig, W: Qwen2VLWeights, ids: number[], features: Float64Array): Float64Array {
  const H = c.text.hiddenSize;
  const E = w(W, 'model.embed_tokens.weight');
  const out = new Float64Array(ids.length * H);
  let k = 0;
  ids.forEach((id, i) => {
    if (id === c.tokens.imageTokenId) out.set(features.subarray(k * H, ++k * H), i * H);
    else out.set(E.subarray(id * H, (id + 1) * H), i * H);
  });
  return out;
}
