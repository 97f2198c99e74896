import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';

import {
  SafetensorsError,
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  writeSafetensors,
  type SafetensorsTensor,
  type SafetensorsTensors,
} from '../../../src/engine/export/safetensors.ts';

// The standard layout, spelled out byte by byte rather than produced by any encoder. Tensors are in the
// reference writer's order (widest dtype first, then name), so this is also exactly what Python's
// `safetensors.numpy.save_file(tensors, path, metadata={"format": "pt"})` writes for these arrays.
const FIXTURE_HEADER =
  '{"__metadata__":{"format":"pt"},' +
  '"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
  '"bias":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
  '"mask":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}';
const FIXTURE = Buffer.from([
  // u64 little-endian header length: 201 bytes of JSON padded with 7 spaces to 208 = 0xd0
  0xd0,
  0,
  0,
  0,
  0,
  0,
  0,
  0,
  ...Buffer.from(FIXTURE_HEADER, 'ascii'),
  0x20,
  0x20,
  0x20,
  0x20,
  0x20,
  0x20,
  0x20,
  // ids: I64 258 = 0x0102
  0x02,
  0x01,
  0,
  0,
  0,
  0,
  0,
  0,
  // bias: F32 1.0 = 0x3f800000, -2.0 = 0xc0000000, little-endian
  0x00,
  0x00,
  0x80,
  0x3f,
  0x00,
  0x00,
  0x00,
  0xc0,
  // mask: U8
  1,
  0,
  255,
]);

const FIXTURE_TENSORS: SafetensorsTensors = {
  mask: { dtype: 'U8', shape: [3], data: Uint8Array.from([1, 0, 255]) },
  ids: { dtype: 'I64', shape: [1], data: BigInt64Array.from([258n]) },
  bias: { dtype: 'F32', shape: [2], data: Float32Array.from([1, -2]) },
};

/** Builds a file from a raw header object, for corruption cases the encoder would refuse to produce. */
function rawFile(header: unknown, data: Uint8Array, headerLength?: bigint): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  return Buffer.concat([len, json, data]);
}

function assertDecodeError(bytes: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => decodeSafetensors(bytes),
    (error: unknown) => {
      assert.ok(error instanceof SafetensorsError, `expected SafetensorsError, got ${String(error)}`);
      assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('safetensors layout', () => {
  it('encodes exactly the hand-built standard bytes', () => {
    assert.deepEqual(encodeSafetensors(FIXTURE_TENSORS, { format: 'pt' }), FIXTURE);
  });

  it('decodes the hand-built bytes', () => {
    const { tensors, metadata } = decodeSafetensors(FIXTURE);
    assert.deepEqual(metadata, { format: 'pt' });
    assert.deepEqual(Object.keys(tensors).sort(), ['bias', 'ids', 'mask']);
    assert.deepEqual(tensors.bias, { dtype: 'F32', shape: [2], data: Float32Array.from([1, -2]) });
    assert.deepEqual(tensors.ids, { dtype: 'I64', shape: [1], data: BigInt64Array.from([258n]) });
    assert.deepEqual(tensors.mask, { dtype: 'U8', shape: [3], data: Uint8Array.from([1, 0, 255]) });
  });

  it('matches the reference writer on a lone F32 tensor and on metadata with no tensors', () => {
    // Header of 64 bytes exactly (no padding needed), then six little-endian float32s 0..5.
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    assert.equal(header.length, 64);
    const expected = Buffer.concat([
      Buffer.from([64, 0, 0, 0, 0, 0, 0, 0]),
      Buffer.from(header, 'ascii'),
      Buffer.from([0, 0, 0, 0, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, 0, 0, 0x40, 0x40, 0, 0, 0x80, 0x40, 0, 0, 0xa0, 0x40]),
    ]);
    const attn: SafetensorsTensor = { dtype: 'F32', shape: [1, 2, 3], data: Float32Array.from([0, 1, 2, 3, 4, 5]) };
    assert.deepEqual(encodeSafetensors({ 'attn.0': attn }), expected);
    // 35 bytes of JSON + 5 spaces = 40.
    assert.deepEqual(
      encodeSafetensors({}, { framework: 'pt' }),
      Buffer.concat([Buffer.from([40, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"__metadata__":{"framework":"pt"}}     ', 'ascii')]),
    );
  });

  it('orders tensors widest dtype first, then by name, so every tensor is aligned to its element size', () => {
    const tensors: SafetensorsTensors = {
      a: { dtype: 'U8', shape: [3], data: Uint8Array.from([1, 2, 3]) },
      b: { dtype: 'F32', shape: [1], data: Float32Array.from([1]) },
      c: { dtype: 'I32', shape: [1], data: Int32Array.from([1]) },
      d: { dtype: 'F64', shape: [1], data: Float64Array.from([1]) },
      e: { dtype: 'I64', shape: [1], data: BigInt64Array.from([1n]) },
      f: { dtype: 'F32', shape: [1], data: Float32Array.from([2]) },
    };
    const bytes = encodeSafetensors(tensors);
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
    // JSON.parse keeps the key order of the text, which is the data order.
    assert.deepEqual(Object.keys(header), ['e', 'd', 'b', 'f', 'c', 'a']);
    let cursor = 0;
    for (const entry of Object.values(header)) {
      const width = { I64: 8, F64: 8, F32: 4, I32: 4, U8: 1 }[entry.dtype]!;
      assert.equal(entry.data_offsets[0], cursor, 'contiguous');
      assert.equal(entry.data_offsets[0] % width, 0, `${entry.dtype} aligned`);
      cursor = entry.data_offsets[1];
    }
    assert.equal(8 + n + cursor, bytes.length);
  });

  it('pads the header with spaces so the data section is 8-byte aligned', () => {
    for (const name of ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh']) {
      const bytes = encodeSafetensors({ [name]: { dtype: 'F64', shape: [1], data: Float64Array.from([0.5]) } });
      const n = Number(bytes.readBigUInt64LE(0));
      assert.equal(n % 8, 0);
      const header = bytes.subarray(8, 8 + n).toString('utf8');
      assert.match(header, /^\{.*\} *$/);
      assert.equal(bytes.readDoubleLE(8 + n), 0.5);
    }
  });

  it('omits __metadata__ when none is given and handles an empty file', () => {
    const bytes = encodeSafetensors({});
    assert.equal(bytes.subarray(8).toString('utf8'), '{}      ');
    assert.deepEqual(decodeSafetensors(bytes), { tensors: {}, metadata: {} });
  });
});

describe('safetensors round trip', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'safetensors-test-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const all: SafetensorsTensors = {
    'f32.weight': { dtype: 'F32', shape: [2, 3], data: Float32Array.from([1.5, -0, Infinity, -3.25, 1e-30, NaN]) },
    'f64.scalar': { dtype: 'F64', shape: [], data: Float64Array.from([Math.PI]) },
    'i64.ids': { dtype: 'I64', shape: [2], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n]) },
    'i32.pos': { dtype: 'I32', shape: [1, 2], data: Int32Array.from([-7, 2 ** 31 - 1]) },
    'u8.flags': { dtype: 'U8', shape: [3], data: Uint8Array.from([0, 128, 255]) },
    empty: { dtype: 'F32', shape: [0, 4], data: new Float32Array(0) },
  };

  it('round-trips every dtype, scalar and empty shapes, through a file', async () => {
    const path = join(dir, 'all.safetensors');
    await writeSafetensors(path, all, { step: '12', note: 'ünïcode ✓' });
    const { tensors, metadata } = await readSafetensors(path);
    assert.deepEqual(metadata, { note: 'ünïcode ✓', step: '12' });
    assert.deepEqual(tensors, all);
    // The file on disk is the same bytes the in-memory encoder produces.
    assert.deepEqual(await readFile(path), encodeSafetensors(all, { step: '12', note: 'ünïcode ✓' }));
  });

  it('leaves no temporary file behind and replaces an existing file', async () => {
    const path = join(dir, 'replace.safetensors');
    await writeSafetensors(path, { a: { dtype: 'U8', shape: [1], data: Uint8Array.from([1]) } });
    await writeSafetensors(path, { a: { dtype: 'U8', shape: [1], data: Uint8Array.from([2]) } });
    assert.deepEqual((await readSafetensors(path)).tensors.a!.data, Uint8Array.from([2]));
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.startsWith('replace')),
      ['replace.safetensors'],
    );
  });

  it('reads tensors at offsets that are not multiples of their element size', () => {
    // Older writers sorted by name only: the 3-byte U8 tensor pushes the F32 one to offset 3.
    const data = Buffer.alloc(11);
    data.set([9, 8, 7]);
    data.writeFloatLE(0.25, 3);
    data.writeFloatLE(-8, 7);
    const bytes = rawFile(
      {
        a: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
        b: { dtype: 'F32', shape: [2], data_offsets: [3, 11] },
      },
      data,
    );
    assert.deepEqual(decodeSafetensors(bytes).tensors, {
      a: { dtype: 'U8', shape: [3], data: Uint8Array.from([9, 8, 7]) },
      b: { dtype: 'F32', shape: [2], data: Float32Array.from([0.25, -8]) },
    });
  });

  it('decodes from a Uint8Array view at an odd offset and does not alias it', () => {
    const bytes = encodeSafetensors({ w: { dtype: 'F32', shape: [1], data: Float32Array.from([2]) } });
    const backing = new Uint8Array(bytes.length + 1);
    backing.set(bytes, 1);
    const view = backing.subarray(1);
    const w = decodeSafetensors(view).tensors.w!;
    backing.fill(0);
    assert.deepEqual(w.data, Float32Array.from([2]));
  });

  it('writes a subarray view of a larger buffer correctly', () => {
    const big = Float32Array.from([1, 2, 3, 4]);
    const bytes = encodeSafetensors({ w: { dtype: 'F32', shape: [2], data: big.subarray(1, 3) } });
    assert.deepEqual(decodeSafetensors(bytes).tensors.w!.data, Float32Array.from([2, 3]));
  });

  it('stores a tensor named __proto__ as an ordinary entry', () => {
    const tensors: SafetensorsTensors = {};
    Object.defineProperty(tensors, '__proto__', {
      value: { dtype: 'U8', shape: [1], data: Uint8Array.from([5]) },
      enumerable: true,
    });
    const decoded = decodeSafetensors(encodeSafetensors(tensors)).tensors;
    assert.deepEqual(Object.keys(decoded), ['__proto__']);
    assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
  });
});

describe('safetensors write validation', () => {
  it('rejects data whose length does not match the shape', () => {
    assert.throws(
      () => encodeSafetensors({ w: { dtype: 'F32', shape: [2, 2], data: new Float32Array(3) } }),
      /tensor "w": shape \[2,2\] has 4 elements but data has 3/,
    );
  });

  it('rejects a typed array of the wrong kind for the dtype', () => {
    const wrong = { w: { dtype: 'F32', shape: [1], data: new Float64Array(1) } } as unknown as SafetensorsTensors;
    assert.throws(() => encodeSafetensors(wrong), /dtype F32 needs a Float32Array, got Float64Array/);
  });

  it('rejects unsupported dtypes, bad shapes, the reserved name and non-string metadata', () => {
    const bf16 = { w: { dtype: 'F8_E4M3', shape: [1], data: new Uint8Array(1) } } as unknown as SafetensorsTensors;
    assert.throws(() => encodeSafetensors(bf16), /unsupported dtype "F8_E4M3"/);
    assert.throws(() => encodeSafetensors({ w: { dtype: 'U8', shape: [-1], data: new Uint8Array(0) } }), /non-negative/);
    assert.throws(() => encodeSafetensors({ __metadata__: { dtype: 'U8', shape: [0], data: new Uint8Array(0) } }), /reserved/);
    assert.throws(() => encodeSafetensors({}, { step: 3 } as unknown as Record<string, string>), /"step" must be a string/);
  });
});

describe('safetensors corruption', () => {
  const four = new Uint8Array(4);
  const tensor = (begin: number, end: number, shape = [4]) => ({ dtype: 'U8', shape, data_offsets: [begin, end] });

  it('rejects a truncated length prefix', () => {
    assertDecodeError(FIXTURE.subarray(0, 5), /too short/);
  });

  it('rejects a header length past the end of the file or beyond the sanity cap', () => {
    assertDecodeError(rawFile({}, new Uint8Array(0), 1000n), /runs past the end/);
    assertDecodeError(rawFile({}, new Uint8Array(0), 2n ** 40n), /out of range/);
    assertDecodeError(rawFile({}, new Uint8Array(0), 0n), /out of range/);
  });

  it('rejects a header that is not a JSON object', () => {
    const bytes = Buffer.from(FIXTURE);
    bytes[8 + 5] = 0x00; // inside the JSON text
    assertDecodeError(bytes, /not valid JSON/);
    assertDecodeError(rawFile([1, 2], new Uint8Array(0)), /does not start with "\{"/);
    const invalidUtf8 = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0x7b, 0xff, 0xfe, 0x7d])]);
    assertDecodeError(invalidUtf8, /not valid UTF-8/);
  });

  it('rejects a truncated data section (the fixture minus its last byte)', () => {
    assertDecodeError(FIXTURE.subarray(0, FIXTURE.length - 1), /tensor "mask": data_offsets \[16, 19\] exceed the 18-byte data section/);
  });

  it('rejects offsets whose span does not match shape x dtype', () => {
    assertDecodeError(rawFile({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, four), /span 4 bytes but F32 \[2\] needs 8/);
  });

  it('rejects overlapping tensors', () => {
    assertDecodeError(rawFile({ a: tensor(0, 4), b: tensor(2, 6) }, new Uint8Array(6)), /tensor "b": data overlaps/);
  });

  it('rejects holes and trailing bytes in the data section', () => {
    assertDecodeError(rawFile({ a: tensor(0, 4), b: tensor(6, 10) }, new Uint8Array(10)), /tensor "b": gap of 2 unused bytes/);
    assertDecodeError(rawFile({ a: tensor(0, 4) }, new Uint8Array(5)), /data section is 5 bytes but tensors cover only 4/);
  });

  it('rejects malformed entries', () => {
    assertDecodeError(rawFile({ a: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, four), /unsupported dtype "F8_E4M3"/);
    assertDecodeError(rawFile({ a: tensor(4, 0, [0]) }, new Uint8Array(0)), /end before they begin/);
    assertDecodeError(rawFile({ a: tensor(-1, 3, [4]) }, four), /two non-negative integers/);
    assertDecodeError(rawFile({ a: tensor(0, 4, [2.5]) }, four), /non-negative integers/);
    assertDecodeError(rawFile({ a: { dtype: 'U8', data_offsets: [0, 4] } }, four), /shape must be an array/);
    assertDecodeError(rawFile({ a: 7 }, four), /entry must be an object/);
    assertDecodeError(rawFile({ __metadata__: { k: 1 } }, new Uint8Array(0)), /metadata value for "k" must be a string/);
  });

  it('names the file in errors when reading from a path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'safetensors-bad-'));
    try {
      const path = join(dir, 'bad.safetensors');
      await writeSafetensors(path, { a: { dtype: 'U8', shape: [1], data: Uint8Array.from([1]) } });
      await writeFile(path, FIXTURE.subarray(0, 30));
      await assert.rejects(readSafetensors(path), (error: unknown) => {
        assert.ok(error instanceof SafetensorsError);
        assert.ok(error.message.startsWith(`${path}: `), error.message);
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
