// Writes a Hugging Face-style Qwen2-VL folder with random weights (config.json + safetensors, one
// file or shards with model.safetensors.index.json, F32 or BF16): what the shape tests and the
// real-size benchmark load. Tensors are generated and written one at a time, so writing a
// multi-gigabyte folder needs memory for one tensor only.
import { open, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseQwen2VLConfig } from './config.ts';
import { qwen2VLParamTable, type Qwen2VLParam } from './params.ts';

export interface RandomFolderOptions {
  dtype?: 'F32' | 'BF16';
  /** Start a new shard once one holds this many bytes; Infinity = one model.safetensors. */
  shardBytes?: number;
  seed?: number;
}

/** xorshift32 → uniform in [-1, 1). Uniform noise scaled to the wanted std (sqrt(3)·std). */
function uniformSource(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2147483648 - 1;
  };
}

function fill(p: Qwen2VLParam, n: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  const k = Math.sqrt(3);
  if (p.kind === 'norm') {
    for (let i = 0; i < n; i++) out[i] = 1 + 0.1 * k * rand();
    return out;
  }
  const fanIn = p.kind === 'linear' ? p.shape.slice(1).reduce((a, b) => a * b, 1) : 1;
  const std = p.kind === 'linear' ? 1 / Math.sqrt(fanIn) : p.kind === 'embedding' ? 0.1 : 0.05;
  for (let i = 0; i < n; i++) out[i] = std * k * rand();
  return out;
}

/** Round-to-nearest-even float32 → bfloat16 bits. */
function toBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/** Writes the folder; `rawConfig` is a config.json object (either layout). Returns the tensor count. */
export async function writeRandomQwen2VLFolder(dir: string, rawConfig: Record<string, unknown>, opts: RandomFolderOptions = {}): Promise<number> {
  const config = parseQwen2VLConfig(rawConfig);
  const dtype = opts.dtype ?? 'F32';
  const width = dtype === 'F32' ? 4 : 2;
  const table = qwen2VLParamTable(config);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(rawConfig, null, 2)}\n`);
  // Plan shards by size, in table order.
  const shards: Qwen2VLParam[][] = [[]];
  let bytes = 0;
  for (const p of table) {
    const size = p.shape.reduce((a, b) => a * b, 1) * width;
    if (bytes > 0 && bytes + size > (opts.shardBytes ?? Infinity)) {
      shards.push([]);
      bytes = 0;
    }
    shards[shards.length - 1].push(p);
    bytes += size;
  }
  const names =
    shards.length === 1
      ? ['model.safetensors']
      : shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const rand = uniformSource(opts.seed ?? 1);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards.length; s++) {
    const entries: string[] = ['"__metadata__":{"format":"pt"}'];
    let offset = 0;
    for (const p of shards[s]) {
      const size = p.shape.reduce((a, b) => a * b, 1) * width;
      entries.push(`${JSON.stringify(p.name)}:{"dtype":"${dtype}","shape":${JSON.stringify(p.shape)},"data_offsets":[${offset},${offset + size}]}`);
      offset += size;
      weightMap[p.name] = names[s];
    }
    total += offset;
    const json = Buffer.from(`{${entries.join(',')}}`);
    const padded = Math.ceil(json.length / 8) * 8;
    const header = Buffer.alloc(8 + padded, 0x20);
    header.writeBigUInt64LE(BigInt(padded), 0);
    json.copy(header, 8);
    const handle = await open(join(dir, names[s]), 'w');
    try {
      await handle.write(header);
      for (const p of shards[s]) {
        const data = fill(
          p,
          p.shape.reduce((a, b) => a * b, 1),
          rand,
        );
        const out = dtype === 'F32' ? data : toBf16(data);
        await handle.write(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
      }
    } finally {
      await handle.close();
    }
  }
  if (shards.length > 1) {
    await writeFile(join(dir, 'model.safetensors.index.json'), `${JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2)}\n`);
  }
  return table.length;
}
