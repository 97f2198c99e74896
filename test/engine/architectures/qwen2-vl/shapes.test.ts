// Shape-generic paths on configurations other than the shared reference: tied embeddings, GQA 3:1 and
// 1:1, other M-RoPE sections, other vision widths, two images of different sizes in one call, the v5
// config layout. The serving graphs are checked against a plain float64 implementation
// (reference-impl.ts), KV-cache steps against full recomputation, and the server's graph variant
// (last-position logits, new-only presents with a JS-side cache) against the transformers.js one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildDecoderGraph, buildQwen2VLServingGraphs } from '../../../../src/engine/architectures/qwen2-vl/graphs.ts';
import { writeRandomQwen2VLFolder } from '../../../../src/engine/architectures/qwen2-vl/random-folder.ts';
import {
  argmax,
  decoderPass,
  embedIds,
  encodeImages,
  mergeImageFeatures,
  openQwen2VLSessions,
  type Qwen2VLSessions,
} from '../../../../src/engine/architectures/qwen2-vl/sessions.ts';
import { readQwen2VLFolderF32 } from '../../../../src/engine/architectures/qwen2-vl/weights.ts';
import { serializeGraph } from '../../../../src/engine/graph/serialize.ts';
import { openSession, ort } from '../../../../src/engine/ort/session.ts';
import { referenceEmbed, referenceRopeIndex, referenceText, referenceVision } from './reference-impl.ts';

const TOKENS = {
  bos_token_id: 280,
  eos_token_id: [281, 280],
  vision_start_token_id: 284,
  vision_end_token_id: 285,
  vision_token_id: 286,
  image_token_id: 287,
  video_token_id: 288,
};

/** v5 layout; GQA 3:1, tied, sections [4,2,2], 3 vision heads of 16. */
const CONFIG_TIED_GQA3 = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  ...TOKENS,
  text_config: {
    hidden_size: 96,
    num_hidden_layers: 2,
    num_attention_heads: 6,
    num_key_value_heads: 2,
    intermediate_size: 80,
    vocab_size: 300,
    rms_norm_eps: 1e-6,
    max_position_embeddings: 4096,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    rope_parameters: { rope_type: 'default', mrope_section: [4, 2, 2], rope_theta: 10000 },
  },
  vision_config: {
    depth: 2,
    embed_dim: 48,
    num_heads: 3,
    mlp_ratio: 2,
    hidden_size: 96,
    in_channels: 3,
    patch_size: 14,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
    hidden_act: 'quick_gelu',
  },
};

/** flat layout; plain multi-head (1:1), untied, sections [1,2,1], 3 layers. */
const CONFIG_MHA = {
  architectures: ['Qwen2VLForConditionalGeneration'],
  model_type: 'qwen2_vl',
  ...TOKENS,
  hidden_size: 32,
  num_hidden_layers: 3,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  intermediate_size: 48,
  vocab_size: 300,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 4096,
  tie_word_embeddings: false,
  rope_theta: 500000,
  rope_scaling: { type: 'mrope', mrope_section: [1, 2, 1] },
  vision_config: {
    depth: 1,
    embed_dim: 16,
    num_heads: 1,
    mlp_ratio: 3,
    hidden_size: 32,
    in_chans: 3,
    patch_size: 14,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
    hidden_act: 'quick_gelu',
  },
};

const GRIDS = [
  [1, 4, 6],
  [1, 6, 2],
];

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, 'length');
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function randomPixels(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return (s / 2147483648) * 4 - 2;
  });
}

function promptIds(c: { tokens: { imageTokenId: number; visionStartTokenId: number; visionEndTokenId: number } }, grids: number[][]): number[] {
  const ids = [5, 17, 33];
  for (const [t, h, w] of grids)
    ids.push(c.tokens.visionStartTokenId, ...new Array((t * h * w) / 4).fill(c.tokens.imageTokenId), c.tokens.visionEndTokenId, 40, 41);
  ids.push(99, 100, 101);
  return ids;
}

async function withFolder(raw: Record<string, unknown>, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'qwen2vl-shapes-'));
  try {
    await writeRandomQwen2VLFolder(dir, raw, { seed: 7 });
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function checkConfig(raw: Record<string, unknown>): Promise<void> {
  await withFolder(raw, async (dir) => {
    const { config: c, weights } = await readQwen2VLFolderF32(dir);
    const s = await openQwen2VLSessions(c, buildQwen2VLServingGraphs(c, { kind: 'arrays', weights }));
    const pd = c.vision.patchDim;
    const sizes = GRIDS.map(([t, h, w]) => t * h * w);
    const pixels = randomPixels((sizes[0] + sizes[1]) * pd, 11);

    // vision: two images in one call = the plain implementation, and = each image alone
    const both = await encodeImages(s, pixels, GRIDS);
    const ref = referenceVision(c, weights, pixels, GRIDS);
    assert.ok(maxAbs(both.features, ref) < 1e-4, `vision vs reference ${maxAbs(both.features, ref)}`);
    const first = await encodeImages(s, pixels.subarray(0, sizes[0] * pd), [GRIDS[0]]);
    const second = await encodeImages(s, pixels.subarray(sizes[0] * pd), [GRIDS[1]]);
    const alone = new Float32Array([...first.features, ...second.features]);
    assert.ok(maxAbs(both.features, alone) < 1e-5, `two images vs each alone ${maxAbs(both.features, alone)}`);

    // prefill logits vs the plain implementation
    const ids = promptIds(c, GRIDS);
    const { positions, ropeDelta } = referenceRopeIndex(c, ids, GRIDS);
    const embeds = mergeImageFeatures(await embedIds(s, ids), ids, both.features, c);
    const refEmbeds = referenceEmbed(c, weights, ids, ref);
    assert.ok(maxAbs(embeds, refEmbeds) < 1e-4);
    const prefill = await decoderPass(s, embeds, 1, positions, null);
    const refLogits = referenceText(c, weights, refEmbeds, positions);
    assert.ok(maxAbs(prefill.logits.data as Float32Array, refLogits) < 1e-4, `logits vs reference ${maxAbs(prefill.logits.data as Float32Array, refLogits)}`);

    // 5 cached greedy steps (present = past + new) vs full recomputation of the grown sequence
    const V = c.text.vocabSize;
    const L = ids.length;
    const all = prefill.logits.data as Float32Array;
    const seq = [...ids, argmax(all.subarray((L - 1) * V))];
    let past = prefill.presents;
    const cachedLogits: Float32Array[] = [];
    for (let step = 1; step <= 5; step++) {
      const pos = L + step - 1 + ropeDelta;
      const r = await decoderPass(s, await embedIds(s, [seq[seq.length - 1]]), 1, [[pos], [pos], [pos]], past);
      past = r.presents;
      const logits = r.logits.data as Float32Array;
      cachedLogits.push(logits);
      seq.push(argmax(logits));
    }
    const fullIds = seq.slice(0, -1);
    const fullPos = referenceRopeIndex(c, fullIds, GRIDS);
    const fullEmbeds = mergeImageFeatures(await embedIds(s, fullIds), fullIds, both.features, c);
    const full = (await decoderPass(s, fullEmbeds, 1, fullPos.positions, null)).logits.data as Float32Array;
    cachedLogits.forEach((row, i) => {
      const at = L + i;
      assert.ok(maxAbs(row, full.subarray(at * V, (at + 1) * V)) < 2e-5, `step ${i + 1}: cached vs recomputed`);
    });

    // the server's variant: last-position logits, new-only presents appended to a JS-side cache
    await checkServerVariant(s, c, weights, embeds, positions, ropeDelta, seq.slice(L), cachedLogits, prefill.logits.data as Float32Array);
  });
}

async function checkServerVariant(
  s: Qwen2VLSessions,
  c: Qwen2VLSessions['config'],
  weights: Map<string, Float32Array>,
  embeds: Float32Array,
  positions: number[][],
  ropeDelta: number,
  generated: number[],
  cachedLogits: Float32Array[],
  prefillLogits: Float32Array,
): Promise<void> {
  const t = c.text;
  const V = t.vocabSize;
  const L = positions[0].length;
  const g = buildDecoderGraph(c, { kind: 'arrays', weights }, { logits: 'last', present: 'new' });
  const dec = (await openSession(serializeGraph(g))).session;
  const server = { ...s, decoder: dec };
  const first = await decoderPass(server, embeds, 1, positions, null);
  assert.deepEqual(first.logits.dims, [1, 1, V]);
  assert.ok(maxAbs(first.logits.data as Float32Array, prefillLogits.subarray((L - 1) * V)) < 1e-5);
  // The cache as the server keeps it: a buffer with spare slots (junk in them, masked out by
  // attention_mask) into which each step's new keys/values are written.
  const Dh = t.headDim;
  const kvh = t.numKvHeads;
  const cap = L + 8;
  const cache = first.presents.map((x) => {
    const buf = new Float32Array(kvh * cap * Dh).fill(7);
    const d = x.data as Float32Array;
    for (let h = 0; h < kvh; h++) buf.set(d.subarray(h * L * Dh, (h + 1) * L * Dh), h * cap * Dh);
    return buf;
  });
  let len = L;
  for (let step = 1; step <= 5; step++) {
    const pos = L + step - 1 + ropeDelta;
    const feed: Record<string, ort.Tensor> = {
      inputs_embeds: new ort.Tensor('float32', await embedIds(s, [generated[step - 1]]), [1, 1, t.hiddenSize]),
      attention_mask: new ort.Tensor(
        'int64',
        BigInt64Array.from({ length: cap + 1 }, (_, j) => (j < len || j === cap ? 1n : 0n)),
        [1, cap + 1],
      ),
      position_ids: new ort.Tensor('int64', BigInt64Array.from([pos, pos, pos].map(BigInt)), [3, 1, 1]),
    };
    for (let l = 0; l < t.numLayers; l++) {
      feed[`past_key_values.${l}.key`] = new ort.Tensor('float32', cache[2 * l], [1, kvh, cap, Dh]);
      feed[`past_key_values.${l}.value`] = new ort.Tensor('float32', cache[2 * l + 1], [1, kvh, cap, Dh]);
    }
    const out = await dec.run(feed);
    const presents = Array.from({ length: t.numLayers }, (_, l) => [out[`present.${l}.key`], out[`present.${l}.value`]]).flat();
    assert.deepEqual(presents[0].dims, [1, kvh, 1, Dh], 'new-only presents');
    assert.ok(maxAbs(out.logits.data as Float32Array, cachedLogits[step - 1]) < 1e-5, `server step ${step}`);
    presents.forEach((x, i) => {
      const d = x.data as Float32Array;
      for (let h = 0; h < kvh; h++) cache[i].set(d.subarray(h * Dh, (h + 1) * Dh), (h * cap + len) * Dh);
    });
    len++;
  }
}

test('tied embeddings, GQA 3:1, M-RoPE [4,2,2], v5 config: graphs = plain implementation; cache = recomputation', async () => {
  await checkConfig(CONFIG_TIED_GQA3);
});

test('untied, multi-head 1:1, M-RoPE [1,2,1], flat config: graphs = plain implementation; cache = recomputation', async () => {
  await checkConfig(CONFIG_MHA);
});
