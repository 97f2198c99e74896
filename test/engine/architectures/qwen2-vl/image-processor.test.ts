import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import sharp from 'sharp';
import { readSafetensors } from '../../../../src/engine/export/safetensors.ts';
import {
  imageTokenCount,
  parseQwen2VlImageConfig,
  patchesFromResized,
  processRgbImage,
  resizeBicubic,
  roundHalfEven,
  smartResize,
  type Qwen2VlImageConfig,
} from '../../../../src/engine/architectures/qwen2-vl/image-processor.ts';
import { decodeNativeRgb } from '../../../../src/preprocess/image.ts';
import { TS, writeDicomImage } from '../../../preprocess/dicom-writer.ts';
import { GOLDEN_DIR, REFERENCE_DIR, REFERENCE_ROOT } from '../../../support/hf-folders.ts';

interface Case {
  height: number;
  width: number;
  min_pixels: number;
  max_pixels: number;
  factor: number;
  resized_height: number;
  resized_width: number;
}

const LIMITS = { maxInputPixels: 50_000_000, maxBytes: 50_000_000 };

async function rawRgb(file: string): Promise<{ rgb: Uint8Array; width: number; height: number }> {
  const { data, info } = await sharp(file).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  return { rgb: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height };
}

function greyDifference(a: Uint8Array, b: Uint8Array): { max: number; mean: number } {
  assert.equal(a.length, b.length);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    max = Math.max(max, d);
    sum += d;
  }
  return { max, mean: sum / a.length };
}

describe('Qwen2-VL image processor', () => {
  let cfg: Qwen2VlImageConfig;
  let golden: Float32Array;
  let caseJson: { image_size_hw: number[]; resized_hw: number[]; image_grid_thw: number[][]; num_image_tokens: number };
  before(async () => {
    const raw = JSON.parse(await readFile(path.join(REFERENCE_DIR, 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;
    cfg = parseQwen2VlImageConfig(raw, 'preprocessor_config.json');
    golden = (await readSafetensors(path.join(GOLDEN_DIR, 'tensors.safetensors'))).tensors.pixel_values!.data as Float32Array;
    caseJson = JSON.parse(await readFile(path.join(GOLDEN_DIR, 'case.json'), 'utf8'));
  });

  it('smart_resize matches every vector of smart_resize_cases.json', async () => {
    const { cases } = JSON.parse(await readFile(path.join(REFERENCE_ROOT, 'smart_resize_cases.json'), 'utf8')) as { cases: Case[] };
    assert.ok(cases.length >= 12);
    for (const c of cases) {
      assert.deepEqual(smartResize(c.height, c.width, c.factor, c.min_pixels, c.max_pixels), [c.resized_height, c.resized_width], JSON.stringify(c));
    }
  });

  it('rounds halves to even, as Python does', () => {
    assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4999, 2.5001, -1.5, -2.5].map(roundHalfEven), [0, 2, 2, 4, 2, 3, -2, -2]);
    assert.throws(() => smartResize(1, 201, 28, 1, 1e9), /aspect ratio/);
  });

  it('reads preprocessor_config.json, including the newer size form, and refuses what it cannot do', () => {
    assert.equal(cfg.minPixels, 3136);
    assert.equal(cfg.maxPixels, 20000);
    assert.equal(cfg.patchSize * cfg.mergeSize, 28);
    const newer = parseQwen2VlImageConfig({ size: { shortest_edge: 1000, longest_edge: 5000 } }, 'p.json');
    assert.equal(newer.minPixels, 1000);
    assert.equal(newer.maxPixels, 5000);
    assert.throws(() => parseQwen2VlImageConfig({ resample: 2 }, 'x/preprocessor_config.json'), /x\/preprocessor_config\.json: resample 2 is not supported/);
    assert.throws(() => parseQwen2VlImageConfig({ image_std: [1, 0, 1] }, 'p.json'), /image_std must not contain 0/);
  });

  it('pixel_values from golden/resized.png equal the golden pixel_values (≤ 1e-6), with the golden grid', async () => {
    const resized = await rawRgb(path.join(GOLDEN_DIR, 'resized.png'));
    assert.deepEqual([resized.height, resized.width], caseJson.resized_hw);
    const out = patchesFromResized(cfg, resized.rgb, resized.width, resized.height);
    assert.deepEqual([out.gridThw], caseJson.image_grid_thw);
    assert.equal(out.numImageTokens, caseJson.num_image_tokens);
    assert.equal(out.patchDim, 1176);
    assert.equal(out.pixelValues.length, golden.length);
    let max = 0;
    for (let i = 0; i < golden.length; i++) max = Math.max(max, Math.abs(out.pixelValues[i]! - golden[i]!));
    assert.ok(max <= 1e-6, `max abs ${max}`);
    assert.equal(max, 0); // measured: bit-identical
  });

  it('from golden/image.png: resized size, grid and token count exact; sharp resize within the measured grey-level bounds', async () => {
    const decoded = await decodeNativeRgb(await readFile(path.join(GOLDEN_DIR, 'image.png')), LIMITS, 'white');
    assert.deepEqual([decoded.height, decoded.width], caseJson.image_size_hw);
    assert.equal(imageTokenCount(cfg, decoded.height, decoded.width), caseJson.num_image_tokens);
    const out = await processRgbImage(cfg, decoded.rgb, decoded.width, decoded.height);
    assert.deepEqual([out.resizedHeight, out.resizedWidth], caseJson.resized_hw);
    assert.deepEqual([out.gridThw], caseJson.image_grid_thw);

    const pillow = await rawRgb(path.join(GOLDEN_DIR, 'resized.png'));
    const ours = await resizeBicubic(decoded.rgb, decoded.width, decoded.height, pillow.width, pillow.height);
    const diff = greyDifference(ours, pillow.rgb);
    // Measured: max 5, mean 0.095 (one-pass cubic: 6 / 0.216). A ±1 grey level is 0.015 in pixel_values.
    assert.ok(diff.max <= 5 && diff.mean <= 0.1, JSON.stringify(diff));
    let max = 0;
    let sum = 0;
    for (let i = 0; i < golden.length; i++) {
      const d = Math.abs(out.pixelValues[i]! - golden[i]!);
      max = Math.max(max, d);
      sum += d;
    }
    // 5 grey levels at the smallest std (0.2613) is 5/255/0.2613 = 0.075.
    assert.ok(max <= 0.08 && sum / golden.length <= 0.002, `pixel_values max ${max}, mean ${sum / golden.length}`);
  });

  it('composites transparency onto white, as the processor converts RGBA', async () => {
    const transparent = await sharp({ create: { width: 56, height: 56, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } })
      .png()
      .toBuffer();
    const decoded = await decodeNativeRgb(transparent, LIMITS, 'white');
    assert.ok(decoded.rgb.every((v) => v === 255));
  });

  it('a DICOM image goes through the same path after its window: grey copied to RGB, then the same resize and patches', async () => {
    const rows = 60;
    const columns = 90;
    const samples = Array.from({ length: rows * columns }, (_, i) => (i % columns) * 40); // a ramp, 0..3560
    const dicom = writeDicomImage({ transferSyntax: TS.explicitLittle, rows, columns, bitsAllocated: 16, samples, windowCenter: 1780, windowWidth: 3560 });
    const decoded = await decodeNativeRgb(dicom, LIMITS, 'white');
    assert.deepEqual([decoded.width, decoded.height], [columns, rows]);
    for (let i = 0; i < decoded.rgb.length; i += 3) {
      assert.equal(decoded.rgb[i], decoded.rgb[i + 1]);
      assert.equal(decoded.rgb[i], decoded.rgb[i + 2]);
    }
    assert.ok(decoded.rgb[0]! < 5 && decoded.rgb[3 * (columns - 1)]! > 250, 'windowed ramp from black to white');
    const out = await processRgbImage(cfg, decoded.rgb, decoded.width, decoded.height);
    assert.deepEqual(smartResize(rows, columns, 28, cfg.minPixels, cfg.maxPixels), [out.resizedHeight, out.resizedWidth]);
    assert.deepEqual(out.gridThw, [1, out.resizedHeight / 14, out.resizedWidth / 14]);
    assert.equal(out.numImageTokens, (out.resizedHeight / 28) * (out.resizedWidth / 28));
  });

  it('merge-grouped patch order and two identical temporal frames, against the index formula', () => {
    const width = 56;
    const height = 84;
    const rgb = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 7919) % 256);
    const plain: Qwen2VlImageConfig = { ...parseQwen2VlImageConfig({}, 'p.json'), doRescale: false, doNormalize: false };
    const out = patchesFromResized(plain, rgb, width, height);
    const gh = height / 14;
    const gw = width / 14;
    assert.deepEqual(out.gridThw, [1, gh, gw]);
    let n = 0;
    for (let bh = 0; bh < gh / 2; bh++) {
      for (let bw = 0; bw < gw / 2; bw++) {
        for (let ih = 0; ih < 2; ih++) {
          for (let iw = 0; iw < 2; iw++, n++) {
            const row = 2 * bh + ih;
            const col = 2 * bw + iw;
            for (const [c, t, py, px] of [
              [0, 0, 0, 0],
              [2, 1, 13, 5],
              [1, 1, 7, 13],
              [2, 0, 3, 9],
            ] as const) {
              const value = out.pixelValues[n * 1176 + c * 392 + t * 196 + py * 14 + px];
              assert.equal(value, rgb[((14 * row + py) * width + 14 * col + px) * 3 + c]);
            }
          }
        }
      }
    }
    assert.equal(n, out.numPatches);
  });
});
