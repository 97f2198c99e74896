// Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
//
//   [8 bytes]  N, little-endian u64: byte length of the JSON header
//   [N bytes]  UTF-8 JSON: {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}
//              padded with trailing spaces so the data section starts 8-byte aligned
//   [rest]     tensor bytes, little-endian, row-major; offsets are relative to the start of this section
//
// The writer lays the file out exactly as the reference Rust/Python implementation does: tensors sorted
// by dtype, widest alignment first (I64, F64, F32, I32, U8 among ours), then by the UTF-8 bytes of their
// names, so every tensor starts at a multiple of its element size; header entries in that same order;
// compact JSON with "__metadata__" first and keys dtype/shape/data_offsets in that order; space padding.
// Files written here are therefore byte-identical to Python's `safetensors.numpy.save_file` for the same
// tensors (and metadata with at most one key, whose order Python leaves to a hash map). The reader
// enforces the reference reader's rules: the data section is covered exactly, no holes, no overlaps.

import { open, readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { writeFileDurably } from '../../files/durable-file.ts';

export type SafetensorsDtype = 'F32' | 'F64' | 'I64' | 'I32' | 'U8' | 'F16' | 'BF16';

// F16 and BF16 have no JS typed array: their raw 16-bit patterns are kept in a Uint16Array
// (see float32FromHalf / float32FromBfloat16 below for the conversion).
interface DtypeArrays {
  F32: Float32Array;
  F64: Float64Array;
  I64: BigInt64Array;
  I32: Int32Array;
  U8: Uint8Array;
  F16: Uint16Array;
  BF16: Uint16Array;
}

/** One tensor; the typed array type is tied to the dtype so a mismatch is a type error. */
export type SafetensorsTensor = {
  [D in SafetensorsDtype]: { dtype: D; shape: number[]; data: DtypeArrays[D] };
}[SafetensorsDtype];

export type SafetensorsTensors = Record<string, SafetensorsTensor>;
export type SafetensorsMetadata = Record<string, string>;

export interface SafetensorsFile {
  tensors: SafetensorsTensors;
  metadata: SafetensorsMetadata;
}

/** Raised for any malformed input, on read or on write. */
export class SafetensorsError extends Error {
  override name = 'SafetensorsError';
}

// `rank` is the dtype's position in the reference implementation's Dtype enum, which is declared in
// increasing alignment order (BOOL, U8, …, I32, U32, F32, F64, I64, U64); the writer sorts by it, descending.
const DTYPES: {
  [D in SafetensorsDtype]: { bytes: number; rank: number; ctor: new (buffer: ArrayBuffer) => DtypeArrays[D] };
} = {
  I64: { bytes: 8, rank: 13, ctor: BigInt64Array },
  F64: { bytes: 8, rank: 12, ctor: Float64Array },
  F32: { bytes: 4, rank: 11, ctor: Float32Array },
  I32: { bytes: 4, rank: 9, ctor: Int32Array },
  BF16: { bytes: 2, rank: 8, ctor: Uint16Array },
  F16: { bytes: 2, rank: 7, ctor: Uint16Array },
  U8: { bytes: 1, rank: 1, ctor: Uint8Array },
};

/** Bytes per element of a dtype. */
export function dtypeBytes(dtype: SafetensorsDtype): number {
  return DTYPES[dtype].bytes;
}

// Same cap as the reference implementation: a header this large is corruption, not a model.
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

function isDtype(value: unknown): value is SafetensorsDtype {
  return typeof value === 'string' && Object.hasOwn(DTYPES, value);
}

// Typed arrays use host byte order; the format is little-endian. Every machine Node ships for is
// little-endian, so refuse loudly rather than carry an untested byte-swapping path.
function assertLittleEndianHost(): void {
  if (endianness() !== 'LE') throw new SafetensorsError('safetensors I/O requires a little-endian host');
}

function elementCount(shape: readonly number[], where: string): number {
  let count = 1;
  for (const dim of shape) {
    if (!Number.isSafeInteger(dim) || dim < 0) {
      throw new SafetensorsError(`${where}: shape ${JSON.stringify(shape)} must contain non-negative integers`);
    }
    count *= dim;
  }
  if (!Number.isSafeInteger(count)) throw new SafetensorsError(`${where}: shape ${JSON.stringify(shape)} is too large`);
  return count;
}

// The reference implementation sorts by Rust's string order, i.e. UTF-8 bytes; JS's default sort
// compares UTF-16 code units, which differs for some non-BMP names.
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

interface PlannedTensor {
  name: string;
  bytes: Uint8Array;
}

/** Validates the tensors and builds the padded header; shared by the in-memory and the streaming writer. */
function plan(
  tensors: SafetensorsTensors,
  metadata: SafetensorsMetadata | undefined,
): {
  header: Buffer;
  parts: PlannedTensor[];
  dataBytes: number;
} {
  assertLittleEndianHost();
  for (const [name, tensor] of Object.entries(tensors)) {
    if (!isDtype(tensor.dtype)) throw new SafetensorsError(`tensor "${name}": unsupported dtype ${JSON.stringify(tensor.dtype)}`);
  }
  const names = Object.keys(tensors).sort((a, b) => DTYPES[tensors[b]!.dtype].rank - DTYPES[tensors[a]!.dtype].rank || compareUtf8(a, b));
  const entries: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareUtf8); // sorted so output is deterministic
    for (const key of keys) {
      if (typeof metadata[key] !== 'string') {
        throw new SafetensorsError(`metadata value for "${key}" must be a string, got ${typeof metadata[key]}`);
      }
    }
    const sorted = Object.fromEntries(keys.map((k) => [k, metadata[k]]));
    entries.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(sorted)}`);
  }
  const parts: PlannedTensor[] = [];
  let offset = 0;
  for (const name of names) {
    if (name === METADATA_KEY) throw new SafetensorsError(`"${METADATA_KEY}" is reserved and cannot name a tensor`);
    const tensor = tensors[name]!;
    const where = `tensor "${name}"`;
    const spec = DTYPES[tensor.dtype];
    if (!(tensor.data instanceof spec.ctor)) {
      throw new SafetensorsError(`${where}: dtype ${tensor.dtype} needs a ${spec.ctor.name}, got ${tensor.data?.constructor?.name}`);
    }
    const count = elementCount(tensor.shape, where);
    if (tensor.data.length !== count) {
      throw new SafetensorsError(`${where}: shape ${JSON.stringify(tensor.shape)} has ${count} elements but data has ${tensor.data.length}`);
    }
    const end = offset + tensor.data.byteLength;
    entries.push(`${JSON.stringify(name)}:{"dtype":"${tensor.dtype}","shape":${JSON.stringify(tensor.shape)},"data_offsets":[${offset},${end}]}`);
    parts.push({ name, bytes: new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength) });
    offset = end;
  }
  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const header = Buffer.alloc(8 + padded, 0x20); // spaces: padding must stay valid JSON whitespace
  header.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(header, 8);
  return { header, parts, dataBytes: offset };
}

/** Serialises tensors (and optional string metadata) to one safetensors buffer. */
export function encodeSafetensors(tensors: SafetensorsTensors, metadata?: SafetensorsMetadata): Buffer {
  const { header, parts, dataBytes } = plan(tensors, metadata);
  const out = Buffer.allocUnsafe(header.length + dataBytes);
  header.copy(out, 0);
  let at = header.length;
  for (const part of parts) {
    out.set(part.bytes, at);
    at += part.bytes.length;
  }
  return out;
}

/**
 * Writes a safetensors file atomically: the bytes go to a temporary file in the same directory, are
 * fsynced, and the file is renamed over `path`, so readers never see a partial file. Tensor data is
 * streamed from the caller's arrays rather than copied into one big buffer first.
 */
export async function writeSafetensors(path: string, tensors: SafetensorsTensors, metadata?: SafetensorsMetadata): Promise<void> {
  const { header, parts } = plan(tensors, metadata);
  await writeFileDurably(path, async (handle) => {
    await handle.write(header);
    for (const part of parts) {
      if (part.bytes.length > 0) await handle.write(part.bytes);
    }
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Where one tensor's bytes lie, as the header states it (offsets relative to the data section). */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** In header order. */
  entries: SafetensorsEntry[];
  metadata: SafetensorsMetadata;
  /** Byte offset of the data section in the file: 8 + the header length. */
  dataStart: number;
}

/** The header length from the file's first 8 bytes, range-checked against the file's size. */
export function headerLengthOf(first8: Uint8Array, fileBytes: number): number {
  if (fileBytes < 8 || first8.length < 8) throw new SafetensorsError(`file is ${fileBytes} bytes; too short for the 8-byte header length`);
  const headerLength = Buffer.from(first8.buffer, first8.byteOffset, 8).readBigUInt64LE(0);
  if (headerLength < 2n || headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(`header length ${headerLength} is out of range (2..${MAX_HEADER_BYTES})`);
  }
  if (8 + Number(headerLength) > fileBytes) {
    throw new SafetensorsError(`header length ${headerLength} runs past the end of the ${fileBytes}-byte file`);
  }
  return Number(headerLength);
}

/**
 * Parses and checks the JSON header of a file whose data section is `dataLength` bytes. Like the
 * reference reader: sorted by offset, each tensor must start where the previous ended and the last
 * must end at the end of the file, which rejects overlaps, holes, trailing bytes and truncation.
 */
export function parseSafetensorsHeader(headerBytes: Uint8Array, dataLength: number): Omit<SafetensorsHeader, 'dataStart'> {
  if (headerBytes[0] !== 0x7b) throw new SafetensorsError('header does not start with "{"');
  let headerText: string;
  try {
    headerText = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
  } catch {
    throw new SafetensorsError('header is not valid UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(headerText);
  } catch (error) {
    throw new SafetensorsError(`header is not valid JSON: ${(error as Error).message}`);
  }
  if (!isPlainObject(header)) throw new SafetensorsError('header must be a JSON object');

  let metadata: SafetensorsMetadata = {};
  const infos: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(value)) throw new SafetensorsError(`"${METADATA_KEY}" must be an object of strings`);
      for (const [key, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new SafetensorsError(`metadata value for "${key}" must be a string`);
      }
      metadata = Object.fromEntries(Object.entries(value as Record<string, string>));
      continue;
    }
    const where = `tensor "${name}"`;
    if (!isPlainObject(value)) throw new SafetensorsError(`${where}: entry must be an object`);
    const { dtype, shape, data_offsets: offsets } = value;
    if (!isDtype(dtype)) throw new SafetensorsError(`${where}: unsupported dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape)) throw new SafetensorsError(`${where}: shape must be an array`);
    const count = elementCount(shape, where);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new SafetensorsError(`${where}: data_offsets must be two non-negative integers, got ${JSON.stringify(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
    const expected = count * DTYPES[dtype].bytes;
    if (end - begin !== expected) {
      throw new SafetensorsError(`${where}: data_offsets [${begin}, ${end}] span ${end - begin} bytes but ${dtype} ${JSON.stringify(shape)} needs ${expected}`);
    }
    infos.push({ name, dtype, shape: shape as number[], begin, end });
  }

  const byOffset = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const info of byOffset) {
    if (info.end > dataLength) {
      throw new SafetensorsError(
        `tensor "${info.name}": data_offsets [${info.begin}, ${info.end}] exceed the ${dataLength}-byte data section (file truncated?)`,
      );
    }
    if (info.begin < cursor) throw new SafetensorsError(`tensor "${info.name}": data overlaps the previous tensor`);
    if (info.begin > cursor) {
      throw new SafetensorsError(`tensor "${info.name}": gap of ${info.begin - cursor} unused bytes before its data`);
    }
    cursor = info.end;
  }
  if (cursor !== dataLength) {
    throw new SafetensorsError(`data section is ${dataLength} bytes but tensors cover only ${cursor}`);
  }
  return { entries: infos, metadata };
}

/** Parses a safetensors buffer. Tensor data is copied, so results never alias `bytes`. */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  assertLittleEndianHost();
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = headerLengthOf(buf.subarray(0, 8), buf.length);
  const dataStart = 8 + headerLength;
  const { entries: infos, metadata } = parseSafetensorsHeader(buf.subarray(8, dataStart), buf.length - dataStart);

  const tensors: SafetensorsTensors = {};
  for (const info of infos) {
    // Copy into a fresh, aligned buffer: files from other writers (older safetensors versions sorted by
    // name only) may put a tensor at an offset that is not a multiple of its element size, and a view
    // would also pin the whole file in memory.
    const spec = DTYPES[info.dtype];
    const storage = new ArrayBuffer(info.end - info.begin);
    new Uint8Array(storage).set(buf.subarray(dataStart + info.begin, dataStart + info.end));
    const tensor = { dtype: info.dtype, shape: info.shape, data: new spec.ctor(storage) } as SafetensorsTensor;
    // defineProperty so a tensor named "__proto__" is stored as data, not as the object's prototype.
    Object.defineProperty(tensors, info.name, { value: tensor, enumerable: true, writable: true, configurable: true });
  }
  return { tensors, metadata };
}

/**
 * Reads only the header of the file at `path` (the 8-byte length and the JSON), checked against the
 * file's size, so a reader can then fetch tensors one at a time instead of holding the whole file.
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  assertLittleEndianHost();
  const handle = await open(path, 'r');
  try {
    const { size } = await handle.stat();
    const first8 = Buffer.alloc(8);
    await handle.read(first8, 0, Math.min(8, size), 0);
    const headerLength = headerLengthOf(first8, size);
    const headerBytes = Buffer.alloc(headerLength);
    await handle.read(headerBytes, 0, headerLength, 8);
    const parsed = parseSafetensorsHeader(headerBytes, size - 8 - headerLength);
    return { ...parsed, dataStart: 8 + headerLength };
  } catch (error) {
    if (error instanceof SafetensorsError) throw new SafetensorsError(`${path}: ${error.message}`);
    throw error;
  } finally {
    await handle.close();
  }
}

// float32 bit patterns of every float16 value: a table read per element is exact and fast.
let halfTable: Float32Array | undefined;
function halfToFloatTable(): Float32Array {
  if (halfTable) return halfTable;
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exponent = (h >> 10) & 0x1f;
    const fraction = h & 0x3ff;
    if (exponent === 0) table[h] = sign * fraction * 2 ** -24;
    else if (exponent === 31) table[h] = fraction === 0 ? sign * Infinity : Number.NaN;
    else table[h] = sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
  }
  halfTable = table;
  return table;
}

/** IEEE float16 bit patterns -> float32 (exact: every float16 is a float32). */
export function float32FromHalf(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const table = halfToFloatTable();
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

/** bfloat16 bit patterns -> float32 (exact: a bfloat16 is the upper half of a float32). */
export function float32FromBfloat16(bits: Uint16Array, out = new Float32Array(bits.length)): Float32Array {
  const words = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) words[i] = bits[i]! << 16;
  return out;
}

/** Reads and validates a safetensors file from a path, or decodes one already in memory. */
export async function readSafetensors(source: string | Uint8Array): Promise<SafetensorsFile> {
  if (typeof source !== 'string') return decodeSafetensors(source);
  const bytes = await readFile(source);
  try {
    return decodeSafetensors(bytes);
  } catch (error) {
    if (error instanceof SafetensorsError) throw new SafetensorsError(`${source}: ${error.message}`);
    throw error;
  }
}
