// npm run check:reference -- --model <folder> [--json]
//
// Parity of our Qwen2-VL with a reference folder laid out like ../shared/reference/qwen2-vl-tiny
// (an HF model folder plus golden/case.json and golden/tensors.safetensors): loads the folder with the
// HF loader, feeds the golden pixel_values, compares every golden tensor present by max abs
// difference, checks position_ids, rope_delta, the decode positions and generated_ids exactly, and
// runs our image processor on golden/image.png (grid exact, pixel difference reported). Every size
// comes from the folder's own files. With --json the last line is one JSON object; the exit code is 0
// when ok (network tensors ≤ 1e-4, ids, positions and grid equal).
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseQwen2VLConfig, type Qwen2VLConfig } from '../src/engine/architectures/qwen2-vl/config.ts';
import { exportQwen2VLServing } from '../src/engine/architectures/qwen2-vl/export.ts';
import { buildQwen2VLServingGraphs } from '../src/engine/architectures/qwen2-vl/graphs.ts';
import { parseQwen2VlImageConfig, processRgbImage } from '../src/engine/architectures/qwen2-vl/image-processor.ts';
import { qwen2VLExpectedTensors } from '../src/engine/architectures/qwen2-vl/params.ts';
import { ropeIndex, type GridThw } from '../src/engine/architectures/qwen2-vl/rope-index.ts';
import {
  embedIds,
  encodeImages,
  greedyDecode,
  mergeImageFeatures,
  openQwen2VLSessions,
  type Qwen2VLSessions,
} from '../src/engine/architectures/qwen2-vl/sessions.ts';
import { qwen2VlCanonicalName } from '../src/engine/architectures/qwen2-vl/weight-names.ts';
import { readSafetensors } from '../src/engine/export/safetensors.ts';
import { loadWeights } from '../src/hf/weights.ts';
import { decodeNativeRgb } from '../src/preprocess/image.ts';

const TOLERANCE = 1e-4;
/** Past this many bytes of float32 weights the graphs go to a temporary directory with external data. */
const IN_MEMORY_LIMIT = 1.5 * 1024 ** 3;
const NETWORK_KEYS = ['vision_embeds', 'inputs_embeds', 'hidden_layer0', 'logits', 'step_logits'] as const;

interface CaseJson {
  image?: string;
  image_grid_thw: number[][];
  input_ids: number[];
  position_ids: number[][];
  rope_delta: number;
  generated_ids: number[];
  decode_position_ids?: { positions: number[] };
  num_image_tokens?: number;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Number.POSITIVE_INFINITY;
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
}

function sameInts(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  return a.length === b.length && Array.from(a).every((x, i) => x === b[i]);
}

async function openSessions(config: Qwen2VLConfig, weights: Map<string, Float32Array>, tmp: () => Promise<string>): Promise<Qwen2VLSessions> {
  let bytes = 0;
  for (const w of weights.values()) bytes += w.byteLength;
  if (bytes <= IN_MEMORY_LIMIT) {
    return openQwen2VLSessions(config, buildQwen2VLServingGraphs(config, { kind: 'arrays', weights }, { debugOutputs: true }));
  }
  const out = await exportQwen2VLServing(await tmp(), config, weights, { release: true, debugOutputs: true });
  return openQwen2VLSessions(config, out);
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { model: { type: 'string' }, json: { type: 'boolean', default: false } } });
  if (!values.model) {
    console.error('usage: npm run check:reference -- --model <folder> [--json]');
    process.exit(2);
  }
  const dir = values.model;
  const log = (line: string) => {
    if (!values.json) console.log(line);
  };
  const config = parseQwen2VLConfig(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')), join(dir, 'config.json'));
  const t0 = Date.now();
  const loaded = await loadWeights(dir, { expected: qwen2VLExpectedTensors(config), canonicalName: qwen2VlCanonicalName });
  log(
    `loaded ${loaded.files.join(', ')} (${loaded.dtypes.join('/')}, ${loaded.parameterCount} values, sha256 ${loaded.sha256.slice(0, 12)}…) in ${Date.now() - t0} ms`,
  );
  const kase = JSON.parse(await readFile(join(dir, 'golden/case.json'), 'utf8')) as CaseJson;
  const golden = (await readSafetensors(join(dir, 'golden/tensors.safetensors'))).tensors;
  const gt = (name: string) => (golden[name] ? (golden[name].data as Float32Array) : undefined);
  const pixelValues = gt('pixel_values');
  if (!pixelValues) throw new Error(`${join(dir, 'golden/tensors.safetensors')}: pixel_values is missing`);

  let tmpDir: string | undefined;
  const s = await openSessions(config, loaded.weights, async () => (tmpDir = await mkdtemp(join(tmpdir(), 'check-reference-'))));
  try {
    const grids = kase.image_grid_thw;
    const depth = config.vision.depth;
    const vis = await encodeImages(s, pixelValues, grids, ['patch_embeds', 'vision_block.0', `vision_block.${depth - 1}`]);
    const ours: Record<string, ArrayLike<number>> = {
      vision_patch_embeds: vis.outputs.patch_embeds.data as Float32Array,
      vision_block0: vis.outputs['vision_block.0'].data as Float32Array,
      vision_blocks_out: vis.outputs[`vision_block.${depth - 1}`].data as Float32Array,
      vision_embeds: vis.features,
    };
    const ids = kase.input_ids;
    const embeds = mergeImageFeatures(await embedIds(s, ids), ids, vis.features, config);
    ours.inputs_embeds = embeds;
    const r = await greedyDecode(s, embeds, kase.position_ids, kase.rope_delta, kase.generated_ids.length, ['hidden.0', 'last_hidden']);
    ours.hidden_layer0 = r.prefill.outputs['hidden.0'].data as Float32Array;
    ours.last_hidden = r.prefill.outputs.last_hidden.data as Float32Array;
    ours.logits = r.prefill.logits.data as Float32Array;
    ours.step_logits = r.stepLogits;

    const maxAbsAll: Record<string, number | null> = {};
    for (const [name, mine] of Object.entries(ours)) {
      const ref = gt(name);
      maxAbsAll[name] = ref ? maxAbs(mine, ref) : null;
      log(`${name.padEnd(20)} ${ref ? `max abs ${maxAbsAll[name]!.toExponential(2)}` : 'not in golden'}`);
    }
    const generatedEqual = sameInts(r.ids, kase.generated_ids);
    log(`generated_ids        ${JSON.stringify(r.ids)} ${generatedEqual ? '=' : '≠'} golden ${JSON.stringify(kase.generated_ids)}`);

    // positions: our get_rope_index on the golden ids and grids, and the decode positions after it
    const spec = {
      imageTokenId: config.tokens.imageTokenId,
      visionStartTokenId: config.tokens.visionStartTokenId,
      spatialMergeSize: config.vision.spatialMergeSize,
    };
    const pos = ropeIndex(ids, grids as unknown as GridThw[], spec);
    const decodeExpected = kase.decode_position_ids?.positions;
    const decodeOurs = kase.generated_ids.slice(1).map((_, s1) => ids.length + s1 + pos.ropeDelta);
    const positionsEqual =
      pos.positions.every((row, axis) => sameInts(row, kase.position_ids[axis])) &&
      pos.ropeDelta === kase.rope_delta &&
      (decodeExpected === undefined || sameInts(decodeOurs, decodeExpected));
    log(`position_ids         ${positionsEqual ? 'equal' : 'DIFFER'} (rope_delta ours ${pos.ropeDelta}, golden ${kase.rope_delta})`);

    // our processor on the golden image
    let gridEqual = false;
    let pixelMax: number | null = null;
    let pixelMean: number | null = null;
    const imagePath = join(dir, 'golden', kase.image ?? 'image.png');
    const haveImage = await stat(imagePath).then(
      () => true,
      () => false,
    );
    if (haveImage) {
      const pre = parseQwen2VlImageConfig(JSON.parse(await readFile(join(dir, 'preprocessor_config.json'), 'utf8')), join(dir, 'preprocessor_config.json'));
      const decoded = await decodeNativeRgb(await readFile(imagePath), { maxInputPixels: 1e9, maxBytes: 1e9 }, 'white');
      const processed = await processRgbImage(pre, decoded.rgb, decoded.width, decoded.height);
      gridEqual =
        grids.length === 1 &&
        sameInts(processed.gridThw, grids[0]) &&
        (kase.num_image_tokens === undefined || processed.numImageTokens === kase.num_image_tokens);
      if (processed.pixelValues.length === pixelValues.length) {
        let sum = 0;
        pixelMax = 0;
        for (let i = 0; i < pixelValues.length; i++) {
          const d = Math.abs(processed.pixelValues[i] - pixelValues[i]);
          sum += d;
          pixelMax = Math.max(pixelMax, d);
        }
        pixelMean = sum / pixelValues.length;
      }
      log(
        `processor            grid ${JSON.stringify(processed.gridThw)} ${gridEqual ? '=' : '≠'} golden ${JSON.stringify(grids)}; pixel_values max abs ${pixelMax?.toFixed(4)}, mean ${pixelMean?.toFixed(5)}`,
      );
    } else {
      log(`processor            ${imagePath} not found`);
    }

    const networkOk = Object.values(maxAbsAll).every((e) => e === null || e <= TOLERANCE) && NETWORK_KEYS.some((k) => maxAbsAll[k] !== null);
    const ok = networkOk && generatedEqual && positionsEqual && gridEqual;
    log(ok ? 'OK' : 'FAILED');
    const summary = {
      ok,
      max_abs: Object.fromEntries(NETWORK_KEYS.map((k) => [k, maxAbsAll[k] ?? null])),
      generated_ids_equal: generatedEqual,
      positions_equal: positionsEqual,
      grid_equal: gridEqual,
      pixel_max_abs: pixelMax,
      pixel_mean_abs: pixelMean,
    };
    if (values.json) console.log(JSON.stringify(summary));
    process.exitCode = ok ? 0 : 1;
  } finally {
    if (tmpDir) await rm(tmpDir, { recursive: true, force: true });
  }
}

await main();
