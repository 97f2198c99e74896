// npm run bench:qwen2vl [-- --keep <dir>] [--no-prepack] [--steps N]
// (--keep: work in <dir> and leave it; a random folder already there is reused, the serving export redone)
//
// Qwen2-VL at real size on this machine: writes a random-weight HF folder with
// Qwen2-VL-2B-Instruct's shapes (sharded BF16 safetensors, tied embeddings) into a temporary
// directory, loads it through the HF loader, exports the serving graphs (weights as external data),
// and measures: load time (loader + export + sessions), peak RSS against the float32 weight bytes,
// the vision pass on a 448×448 image, prefill tokens/s, decode ms/token at batch 1 and 8, and
// decode's share of the memory bandwidth (decoder weight bytes per step ÷ step time ÷ copy
// bandwidth measured in this run, read + written bytes as STREAM counts them).
// Last line: qwen2vl load_s=<s> rss_ratio=<r> decode_bw_frac=<f> batch8_gain=<g>
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as ortTypes from 'onnxruntime-node';
import { parseQwen2VLConfig } from '../src/engine/architectures/qwen2-vl/config.ts';
import { exportQwen2VLServing } from '../src/engine/architectures/qwen2-vl/export.ts';
import { paramCount, qwen2VLExpectedTensors, qwen2VLParamTable } from '../src/engine/architectures/qwen2-vl/params.ts';
import { writeRandomQwen2VLFolder } from '../src/engine/architectures/qwen2-vl/random-folder.ts';
import { decoderPass, embedIds, encodeImages, mergeImageFeatures, openQwen2VLSessions } from '../src/engine/architectures/qwen2-vl/sessions.ts';
import { qwen2VlCanonicalName } from '../src/engine/architectures/qwen2-vl/weight-names.ts';
import { ropeIndex } from '../src/engine/architectures/qwen2-vl/rope-index.ts';
import { loadWeights } from '../src/hf/weights.ts';
import { QWEN2_VL_2B_CONFIG as QWEN2_VL_2B } from './lib/qwen2-vl-2b.ts';

const { values } = parseArgs({
  options: { keep: { type: 'string' }, 'no-prepack': { type: 'boolean', default: false }, steps: { type: 'string', default: '6' } },
});
const steps = Number(values.steps);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const rss = () => process.memoryUsage().rss;
const peakRss = () => process.resourceUsage().maxRSS * 1024;
const gb = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GB`;
const now = () => performance.now();

/** Copy bandwidth of this machine (bytes read + written per second), best of 5 copies of 512 MB. */
function copyBandwidth(): number {
  const n = 128 * 1024 * 1024;
  const a = new Float32Array(n).fill(1);
  const b = new Float32Array(n);
  let best = Infinity;
  for (let i = 0; i < 5; i++) {
    const t = now();
    b.set(a);
    best = Math.min(best, now() - t);
  }
  return (2 * n * 4) / (best / 1000);
}

async function main(): Promise<void> {
  const config = parseQwen2VLConfig(QWEN2_VL_2B);
  const fp32Bytes = paramCount(config) * 4;
  const root = values.keep ?? (await mkdtemp(join(tmpdir(), 'bench-qwen2vl-')));
  await mkdir(root, { recursive: true });
  const folder = join(root, 'hf');
  const cache = join(root, 'serving');
  console.log(`Qwen2-VL-2B shapes: ${paramCount(config)} parameters, float32 ${gb(fp32Bytes)}; working in ${root}`);
  try {
    let t = now();
    if (
      values.keep &&
      (await stat(join(folder, 'model.safetensors.index.json')).then(
        () => true,
        () => false,
      ))
    ) {
      console.log(`reusing the random folder kept in ${folder}`);
    } else {
      await writeRandomQwen2VLFolder(folder, QWEN2_VL_2B, { dtype: 'BF16', shardBytes: 2 * 1024 ** 3, seed: 3 });
      console.log(`wrote random BF16 folder in ${((now() - t) / 1000).toFixed(1)} s (not part of load)`);
    }
    gc();
    const rssBefore = rss();

    // ---- load: HF loader → serving layout on disk → ORT sessions ----
    const t0 = now();
    const loaded = await loadWeights(folder, { expected: qwen2VLExpectedTensors(config), canonicalName: qwen2VlCanonicalName });
    const tLoaded = now();
    console.log(`loader: ${loaded.files.length} shards ${loaded.dtypes.join('/')} in ${((tLoaded - t0) / 1000).toFixed(1)} s, rss ${gb(rss())}`);
    const exported = await exportQwen2VLServing(cache, config, loaded.weights, { release: true, logits: 'last', present: 'full' });
    loaded.weights.clear();
    gc();
    const tExported = now();
    console.log(`export: weights.bin ${gb(exported.weightBytes)} in ${((tExported - tLoaded) / 1000).toFixed(1)} s, rss ${gb(rss())}`);
    const extra = values['no-prepack'] ? { session: { disable_prepacking: '1' } } : undefined;
    const s = await openQwen2VLSessions(config, exported, { extra });
    const loadS = (now() - t0) / 1000;
    gc();
    console.log(
      `sessions open (prepacking ${values['no-prepack'] ? 'off' : 'on'}): load total ${loadS.toFixed(1)} s, rss ${gb(rss())}, peak so far ${gb(peakRss())}`,
    );

    // ---- vision: one 448×448 image = grid 1×32×32 = 1024 patches ----
    const grid = [1, 448 / 14, 448 / 14];
    const N = grid[0] * grid[1] * grid[2];
    const pixels = Float32Array.from({ length: N * config.vision.patchDim }, (_, i) => Math.sin(i * 0.37) * 1.5);
    t = now();
    const vis = await encodeImages(s, pixels, [grid]);
    const visionMs = now() - t;
    console.log(`vision 448x448 (${N} patches → ${vis.features.length / config.text.hiddenSize} tokens): ${(visionMs / 1000).toFixed(2)} s`);

    // ---- prefill: a chat-shaped prompt around the image ----
    const tk = config.tokens;
    const ids = [
      151644,
      8948,
      198,
      2610,
      525,
      264,
      10950,
      17847,
      13,
      151645,
      198,
      151644,
      872,
      198,
      tk.visionStartTokenId,
      ...new Array(N / 4).fill(tk.imageTokenId),
      tk.visionEndTokenId,
      3838,
      6577,
      374,
      419,
      30,
      151645,
      198,
      151644,
      77091,
      198,
    ];
    const pos = ropeIndex(ids, [grid as [number, number, number]], {
      imageTokenId: tk.imageTokenId,
      visionStartTokenId: tk.visionStartTokenId,
      spatialMergeSize: config.vision.spatialMergeSize,
    });
    const embeds = mergeImageFeatures(await embedIds(s, ids), ids, vis.features, config);
    t = now();
    const prefill = await decoderPass(
      s,
      embeds,
      1,
      pos.positions.map((r) => Array.from(r)),
      null,
    );
    const prefillMs = now() - t;
    const prefillTps = ids.length / (prefillMs / 1000);
    console.log(`prefill ${ids.length} tokens: ${(prefillMs / 1000).toFixed(2)} s = ${prefillTps.toFixed(1)} tokens/s`);

    // ---- decode: batch 1, then batch 8 (the prefill cache tiled over 8 rows) ----
    const decode = async (batch: number): Promise<number> => {
      const tile = (x: ortTypes.Tensor) => {
        const d = x.data as Float32Array;
        const out = new Float32Array(d.length * batch);
        for (let b = 0; b < batch; b++) out.set(d, b * d.length);
        return new ortTypes.Tensor('float32', out, [batch, ...x.dims.slice(1)]);
      };
      let past: ortTypes.Tensor[] = prefill.presents.map(tile);
      const token = await embedIds(s, new Array(batch).fill(3838), batch);
      const times: number[] = [];
      for (let k = 0; k <= steps; k++) {
        const p = ids.length + k + pos.ropeDelta;
        const row = new Array(batch).fill(p);
        const t1 = now();
        const r = await decoderPass(s, token, batch, [row, row, row], past);
        times.push(now() - t1);
        past = r.presents;
      }
      times.shift(); // the first step warms up
      times.sort((a, b) => a - b);
      return times[Math.floor(times.length / 2)];
    };
    const b1 = await decode(1);
    const b8 = await decode(8);
    const gain = 8 / b8 / (1 / b1);
    // bytes a decode step must read: every decoder weight (the embedding table is only gathered from)
    const decoderBytes =
      qwen2VLParamTable(config)
        .filter((p) => p.part === 'text' && p.name !== 'model.embed_tokens.weight')
        .reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1) * 4, 0) +
      config.text.vocabSize * config.text.hiddenSize * 4;
    const bw = copyBandwidth();
    const frac = decoderBytes / (b1 / 1000) / bw;
    console.log(
      `decode batch 1: ${b1.toFixed(1)} ms/token; batch 8: ${b8.toFixed(1)} ms/step = ${(b8 / 8).toFixed(1)} ms/token (throughput ×${gain.toFixed(2)})`,
    );
    console.log(`decode reads ${gb(decoderBytes)} of weights per step → ${gb(decoderBytes / (b1 / 1000))}/s; copy bandwidth ${gb(bw)}/s (read + write)`);
    const peak = peakRss();
    console.log(`peak rss ${gb(peak)} (before load ${gb(rssBefore)}) vs float32 weights ${gb(fp32Bytes)}`);
    console.log(
      `qwen2vl load_s=${loadS.toFixed(1)} rss_ratio=${(peak / fp32Bytes).toFixed(2)} decode_bw_frac=${frac.toFixed(2)} batch8_gain=${gain.toFixed(2)}`,
    );
  } finally {
    if (!values.keep) await rm(root, { recursive: true, force: true });
  }
}

await main();
