// A model directory of serving graphs for a loaded Qwen2-VL: every weight written once, in serving
// layout (linears [in, out]), to one external-data file that the three graphs reference, so a
// model past protobuf's 2 GB limit exports as well as a tiny one, and no graph file copies the
// weights. With `release`, each tensor is dropped from the caller's map once written, so the float32
// weights are not held twice while the file is made.
import { type FileHandle, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileDurably } from '../../../files/durable-file.ts';
import { writeOnnx } from '../../graph/write-onnx.ts';
import type { Qwen2VLConfig } from './config.ts';
import { SERVING_FILES, buildDecoderGraph, buildEmbedTokensGraph, buildVisionEncoderGraph, type DecoderGraphOptions } from './graphs.ts';
import { qwen2VLParamTable, servingLayout, transpose2d, type ExternalRef, type Qwen2VLWeights } from './params.ts';

export const SERVING_WEIGHTS_FILE = 'weights.bin';
const ALIGN = 4096;

export interface ExportOptions extends DecoderGraphOptions {
  /** Delete each tensor from `weights` once it is on disk. */
  release?: boolean;
}

export interface ExportedServing {
  /** Absolute paths of the three .onnx files (open them by path so ORT finds the weights file). */
  vision: string;
  embed: string;
  decoder: string;
  weightsFile: string;
  weightBytes: number;
}

/** Writes `<onnxDir>/weights.bin` in serving layout; returns where each serving tensor lies. */
export async function writeServingWeights(
  onnxDir: string,
  c: Qwen2VLConfig,
  weights: Qwen2VLWeights,
  release = false,
): Promise<{ refs: Map<string, ExternalRef>; bytes: number }> {
  const refs = new Map<string, ExternalRef>();
  const path = join(onnxDir, SERVING_WEIGHTS_FILE);
  let offset = 0;
  const put = async (handle: FileHandle, name: string, data: Float32Array) => {
    offset = Math.ceil(offset / ALIGN) * ALIGN;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    for (let at = 0; at < bytes.length; at += 1 << 30) {
      const chunk = bytes.subarray(at, Math.min(bytes.length, at + (1 << 30)));
      await handle.write(chunk, 0, chunk.length, offset + at);
    }
    refs.set(name, { location: SERVING_WEIGHTS_FILE, offset, length: bytes.length });
    offset += bytes.length;
  };
  await writeFileDurably(path, async (handle) => {
    for (const p of qwen2VLParamTable(c)) {
      const w = weights.get(p.name);
      if (!w) throw new Error(`weights: ${p.name} is missing`);
      const n = p.shape.reduce((a, b) => a * b, 1);
      if (w.length !== n) throw new Error(`weights: ${p.name} has ${w.length} values, expected ${n}`);
      const lay = servingLayout(p);
      await put(handle, lay.name, p.kind === 'linear' ? transpose2d(w, lay.shape[1], lay.shape[0]) : w);
      if (p.name === 'model.embed_tokens.weight' && c.text.tieWordEmbeddings) {
        await put(handle, 'lm_head.tied.T', transpose2d(w, c.text.vocabSize, c.text.hiddenSize));
      }
      if (release) weights.delete(p.name);
    }
  });
  return { refs, bytes: offset };
}

export async function exportQwen2VLServing(dir: string, c: Qwen2VLConfig, weights: Qwen2VLWeights, opts: ExportOptions = {}): Promise<ExportedServing> {
  const onnxDir = join(dir, 'onnx');
  await mkdir(onnxDir, { recursive: true });
  const { refs, bytes } = await writeServingWeights(onnxDir, c, weights, opts.release);
  const source = { kind: 'external', refs } as const;
  const files = {
    vision: join(onnxDir, SERVING_FILES.vision),
    embed: join(onnxDir, SERVING_FILES.embed),
    decoder: join(onnxDir, SERVING_FILES.decoder),
  };
  // The weights are external already; only small constants stay inline.
  await writeOnnx(files.vision, buildVisionEncoderGraph(c, source), { externalData: 'never' });
  await writeOnnx(files.embed, buildEmbedTokensGraph(c, source), { externalData: 'never' });
  await writeOnnx(files.decoder, buildDecoderGraph(c, source, opts), { externalData: 'never' });
  return { ...files, weightsFile: join(onnxDir, SERVING_WEIGHTS_FILE), weightBytes: bytes };
}
