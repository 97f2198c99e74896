// Writes a graph as an .onnx file, with its large initializers as ONNX external data when asked or
// when the model would not fit protobuf's 2 GB message limit. External data follows the ONNX
// convention: one file next to the model (`<model>.onnx_data`), each tensor's bytes at an offset
// recorded in its TensorProto (location/offset/length), offsets aligned to 4 KiB so a runtime can
// map them.
import { writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { writeFileDurably } from '../../files/durable-file.ts';
import type { Graph } from './builder.ts';
import { inlineInitializerBytes, serializeGraph, type ExternalLocation } from './serialize.ts';
import { toModelProto } from './serialize.ts';
import onnxProto from 'onnx-proto';

/** Below protobuf's 2 GiB hard limit, with room for the graph itself. */
export const INLINE_LIMIT_BYTES = 1.8 * 1024 ** 3;
const ALIGN = 4096;

export interface WriteOnnxOptions {
  docString?: string;
  /** 'auto': external only past INLINE_LIMIT_BYTES; 'always': every initializer of ≥ minBytes. */
  externalData?: 'auto' | 'always' | 'never';
  /** Smaller initializers stay inline (scalars, index constants). Default 1024. */
  minExternalBytes?: number;
}

export interface WrittenOnnx {
  path: string;
  /** The external-data file, when one was written. */
  dataPath?: string;
  externalTensors: number;
}

export async function writeOnnx(path: string, g: Graph, opts: WriteOnnxOptions = {}): Promise<WrittenOnnx> {
  const mode = opts.externalData ?? 'auto';
  const inline = inlineInitializerBytes(g);
  const external = mode === 'always' || (mode === 'auto' && inline > INLINE_LIMIT_BYTES);
  if (!external) {
    if (inline > INLINE_LIMIT_BYTES) throw new Error(`${path}: ${inline} bytes of initializers exceed protobuf's limit; use external data`);
    await writeFile(path, serializeGraph(g, opts.docString ?? ''));
    return { path, externalTensors: 0 };
  }
  const minBytes = opts.minExternalBytes ?? 1024;
  const dataName = `${basename(path)}_data`;
  const dataPath = join(dirname(path), dataName);
  const placed = new Map<string, ExternalLocation>();
  await writeFileDurably(dataPath, async (handle) => {
    let offset = 0;
    for (const init of g.initializers) {
      if (init.external || init.data.byteLength < minBytes) continue;
      const aligned = Math.ceil(offset / ALIGN) * ALIGN;
      const bytes = new Uint8Array(init.data.buffer, init.data.byteOffset, init.data.byteLength);
      await handle.write(bytes, 0, bytes.length, aligned);
      placed.set(init.value.name, { location: dataName, offset: aligned, length: bytes.length });
      offset = aligned + bytes.length;
    }
  });
  const proto = onnxProto.onnx.ModelProto.encode(toModelProto(g, opts.docString ?? '', placed)).finish();
  await writeFile(path, proto);
  return { path, dataPath, externalTensors: placed.size };
}
