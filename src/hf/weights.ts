// A folder's weights as float32, checked against the table of tensors the architecture expects:
// `model.safetensors`, or the shards listed in `model.safetensors.index.json`, in F32, F16 or BF16.
//
// Two passes. First every header is read and checked (names, dtypes, shapes, nothing missing), so a
// wrong folder is refused before gigabytes are read. Then each file is read once, front to back: its
// bytes feed the sha256 and each tensor lands in its own float32 array (F32 straight from disk, F16
// and BF16 widened exactly), so peak memory stays near the float32 weights themselves.
//
// The weights' sha256 is the sha256 of `model.safetensors` itself when there is one file (the same
// value `sha256sum` and the Hub's LFS pointer show), and for shards the sha256 of the lines
// "<file sha256>  <file name>\n" in file-name order (what `sha256sum` prints for them, sorted).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  dtypeBytes,
  float32FromBfloat16,
  float32FromHalf,
  readSafetensorsHeader,
  SafetensorsError,
  type SafetensorsDtype,
  type SafetensorsEntry,
} from '../engine/export/safetensors.ts';
import { formatShape, HfFolderError } from './errors.ts';
import { isJsonRecord, readOptionalJsonFile } from './json-file.ts';

export const SINGLE_WEIGHTS_FILE = 'model.safetensors';
export const WEIGHTS_INDEX_FILE = 'model.safetensors.index.json';

export const WEIGHT_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16'];

export interface ExpectedTensor {
  shape: readonly number[];
  /** May be absent from the files (e.g. `lm_head.weight` when tied to the embeddings). */
  optional?: boolean;
}

/** Canonical tensor name → what the architecture needs. */
export type ExpectedTable = ReadonlyMap<string, ExpectedTensor>;

/**
 * A name in the files → the canonical name; `null` for a tensor that is known and not needed
 * (read past, still hashed); `undefined` for a tensor this architecture does not know.
 */
export type CanonicalName = (fileName: string) => string | null | undefined;

export interface LoadWeightsOptions {
  expected: ExpectedTable;
  canonicalName: CanonicalName;
}

export interface LoadedWeights {
  /** Canonical name → float32 values, row-major. */
  weights: Map<string, Float32Array>;
  /** Hex sha256 over the weight files (see the top of this file). */
  sha256: string;
  /** Weight files, relative to the folder, in reading order. */
  files: string[];
  /** Stored dtypes, e.g. {'BF16'}: the model card's dtype. */
  dtypes: SafetensorsDtype[];
  /** Elements of every loaded tensor. */
  parameterCount: number;
  /** Bytes of the weight files on disk. */
  fileBytes: number;
}

interface PlannedTensor {
  entry: SafetensorsEntry;
  /** Canonical name, or null when the tensor is read past. */
  canonical: string | null;
}

interface PlannedFile {
  name: string;
  path: string;
  dataStart: number;
  size: number;
  tensors: PlannedTensor[];
}

/** Reads at most this many bytes per call: fs reads are limited to 2 GiB, and one call per tensor is enough below it. */
const READ_CHUNK = 1 << 30;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Shard files named by the index, in first-appearance order, after checking the index itself. */
async function weightFileNames(dir: string): Promise<{ files: string[]; indexMap?: Map<string, string> }> {
  const index = await readOptionalJsonFile(dir, WEIGHTS_INDEX_FILE);
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (index === undefined) {
    const path = join(dir, SINGLE_WEIGHTS_FILE);
    const exists = await stat(path).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!exists) {
      throw new HfFolderError(`${path}: missing file (and no ${WEIGHTS_INDEX_FILE} naming shards); weights must be safetensors`, path);
    }
    return { files: [SINGLE_WEIGHTS_FILE] };
  }
  const weightMap = index.weight_map;
  if (!isJsonRecord(weightMap) || Object.keys(weightMap).length === 0) {
    throw new HfFolderError(`${indexPath}: "weight_map" must be a non-empty object {tensor: shard file}`, indexPath);
  }
  const files: string[] = [];
  const indexMap = new Map<string, string>();
  for (const [tensor, file] of Object.entries(weightMap)) {
    // Shards are plain file names next to the index: anything else could point outside the folder.
    if (typeof file !== 'string' || !/^[^/\\]+\.safetensors$/.test(file) || file.startsWith('.')) {
      throw new HfFolderError(
        `${indexPath}: tensor "${tensor}" maps to ${JSON.stringify(file)}, which is not a .safetensors file in this folder`,
        indexPath,
        tensor,
      );
    }
    indexMap.set(tensor, file);
    if (!files.includes(file)) files.push(file);
  }
  for (const file of files) {
    const path = join(dir, file);
    const exists = await stat(path).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!exists) throw new HfFolderError(`${path}: missing shard (listed in ${WEIGHTS_INDEX_FILE})`, path);
  }
  return { files, indexMap };
}

/** Reads every header and checks the whole table before any tensor data is read. */
async function planWeights(dir: string, opts: LoadWeightsOptions): Promise<PlannedFile[]> {
  const { files, indexMap } = await weightFileNames(dir);
  const planned: PlannedFile[] = [];
  const seen = new Map<string, { file: string; fileName: string }>();
  for (const name of files) {
    const path = join(dir, name);
    let header: Awaited<ReturnType<typeof readSafetensorsHeader>>;
    try {
      header = await readSafetensorsHeader(path);
    } catch (error) {
      if (error instanceof SafetensorsError) {
        // Tensor-specific header errors start with `tensor "<name>"`; keep that name on the error.
        const tensor = /tensor "([^"]*)"/.exec(error.message)?.[1];
        throw new HfFolderError(error.message, path, tensor);
      }
      throw error;
    }
    const size = (await stat(path)).size;
    const tensors: PlannedTensor[] = [];
    for (const entry of header.entries) {
      const where = `${path}: tensor "${entry.name}"`;
      const owner = indexMap?.get(entry.name);
      if (indexMap && owner !== undefined && owner !== name) {
        throw new HfFolderError(`${where} is also in this shard, but ${WEIGHTS_INDEX_FILE} puts it in ${owner}`, path, entry.name);
      }
      const canonical = opts.canonicalName(entry.name);
      if (canonical === undefined) {
        throw new HfFolderError(`${where} ${formatShape(entry.shape)} is not a parameter of this architecture`, path, entry.name);
      }
      if (canonical !== null) {
        if (!WEIGHT_DTYPES.includes(entry.dtype)) {
          throw new HfFolderError(`${where} has dtype ${entry.dtype}; weights must be ${WEIGHT_DTYPES.join(', ')}`, path, entry.name);
        }
        const expected = opts.expected.get(canonical);
        if (!expected) {
          throw new HfFolderError(`${where} ${formatShape(entry.shape)} is not a parameter of this model's configuration`, path, entry.name);
        }
        if (!sameShape(entry.shape, expected.shape)) {
          throw new HfFolderError(`${where} has shape ${formatShape(entry.shape)}, but config.json needs ${formatShape(expected.shape)}`, path, entry.name);
        }
        const earlier = seen.get(canonical);
        if (earlier) {
          throw new HfFolderError(`${where} is the same parameter as "${earlier.fileName}" in ${earlier.file}`, path, entry.name);
        }
        seen.set(canonical, { file: name, fileName: entry.name });
      }
      tensors.push({ entry, canonical });
    }
    tensors.sort((a, b) => a.entry.begin - b.entry.begin);
    planned.push({ name, path, dataStart: header.dataStart, size, tensors });
  }
  if (indexMap) {
    for (const [tensor, file] of indexMap) {
      if (!planned.find((p) => p.name === file)!.tensors.some((t) => t.entry.name === tensor)) {
        const path = join(dir, file);
        throw new HfFolderError(`${path}: tensor "${tensor}" is listed in ${WEIGHTS_INDEX_FILE} but not stored in this shard`, path, tensor);
      }
    }
  }
  const missing = [...opts.expected].filter(([name, spec]) => !spec.optional && !seen.has(name));
  if (missing.length > 0) {
    const path = join(dir, indexMap ? WEIGHTS_INDEX_FILE : SINGLE_WEIGHTS_FILE);
    const listed = missing
      .slice(0, 5)
      .map(([name, spec]) => `"${name}" ${formatShape(spec.shape)}`)
      .join(', ');
    const more = missing.length > 5 ? ` and ${missing.length - 5} more` : '';
    throw new HfFolderError(`${path}: missing tensor${missing.length > 1 ? 's' : ''} ${listed}${more}`, path, missing[0]![0]);
  }
  return planned;
}

async function readFully(handle: Awaited<ReturnType<typeof open>>, into: Uint8Array, position: number, path: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const length = Math.min(READ_CHUNK, into.length - done);
    const { bytesRead } = await handle.read(into, done, length, position + done);
    // The header was checked against the size, so a short read means the file shrank meanwhile.
    if (bytesRead === 0) throw new HfFolderError(`${path}: file ended early while reading (changed during load?)`, path);
    done += bytesRead;
  }
}

function widen(dtype: SafetensorsDtype, raw: Uint16Array): Float32Array {
  return dtype === 'BF16' ? float32FromBfloat16(raw) : float32FromHalf(raw);
}

/** Reads one file front to back: the sha256 of all its bytes and its tensors as float32. */
async function readFile(file: PlannedFile, weights: Map<string, Float32Array>): Promise<string> {
  const hash = createHash('sha256');
  const handle = await open(file.path, 'r');
  try {
    const head = Buffer.alloc(file.dataStart);
    await readFully(handle, head, 0, file.path);
    hash.update(head);
    for (const { entry, canonical } of file.tensors) {
      const bytes = entry.end - entry.begin;
      const position = file.dataStart + entry.begin;
      const count = bytes / dtypeBytes(entry.dtype);
      if (entry.dtype === 'F32' && canonical !== null) {
        const values = new Float32Array(count);
        const view = new Uint8Array(values.buffer);
        await readFully(handle, view, position, file.path);
        hash.update(view);
        weights.set(canonical, values);
      } else {
        // F16/BF16 are widened after the read; a tensor that is read past is read in pieces for the hash only.
        const raw = new Uint8Array(canonical === null ? Math.min(bytes, READ_CHUNK) : bytes);
        for (let at = 0; at < bytes; at += raw.length) {
          const piece = raw.subarray(0, Math.min(raw.length, bytes - at));
          await readFully(handle, piece, position + at, file.path);
          hash.update(piece);
        }
        if (canonical !== null) weights.set(canonical, widen(entry.dtype, new Uint16Array(raw.buffer, 0, count)));
      }
    }
  } finally {
    await handle.close();
  }
  return hash.digest('hex');
}

function combinedSha256(planned: readonly PlannedFile[], fileHashes: readonly { name: string; sha256: string }[]): string {
  if (fileHashes.length === 1 && planned[0]!.name === SINGLE_WEIGHTS_FILE) return fileHashes[0]!.sha256;
  const lines = [...fileHashes]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((f) => `${f.sha256}  ${f.name}\n`)
    .join('');
  return createHash('sha256').update(lines).digest('hex');
}

function describe(planned: readonly PlannedFile[], sha256: string): Omit<LoadedWeights, 'weights'> {
  const loaded = planned.flatMap((f) => f.tensors.filter((t) => t.canonical !== null));
  return {
    sha256,
    files: planned.map((f) => f.name),
    dtypes: [...new Set(loaded.map((t) => t.entry.dtype))],
    parameterCount: loaded.reduce((n, t) => n + t.entry.shape.reduce((a, b) => a * b, 1), 0),
    fileBytes: planned.reduce((sum, f) => sum + f.size, 0),
  };
}

/** Loads and checks the weights of the folder `dir`; every failure is an HfFolderError naming the file and tensor. */
export async function loadWeights(dir: string, opts: LoadWeightsOptions): Promise<LoadedWeights> {
  const planned = await planWeights(dir, opts);
  const weights = new Map<string, Float32Array>();
  const fileHashes: { name: string; sha256: string }[] = [];
  for (const file of planned) fileHashes.push({ name: file.name, sha256: await readFile(file, weights) });
  return { weights, ...describe(planned, combinedSha256(planned, fileHashes)) };
}

/**
 * Everything loadWeights checks and reports except the values: every header checked against the
 * table, the files hashed by streaming them (nothing is converted or kept). For a start whose
 * serving graphs are already cached under the weights' sha256.
 */
export async function inspectWeights(dir: string, opts: LoadWeightsOptions): Promise<Omit<LoadedWeights, 'weights'>> {
  const planned = await planWeights(dir, opts);
  const fileHashes: { name: string; sha256: string }[] = [];
  for (const file of planned) {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(file.path, { highWaterMark: 1 << 22 })) hash.update(chunk as Buffer);
    fileHashes.push({ name: file.name, sha256: hash.digest('hex') });
  }
  return describe(planned, combinedSha256(planned, fileHashes));
}
