import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeSafetensors, readSafetensors, type SafetensorsTensors } from '../../src/engine/export/safetensors.ts';
import { qwen2VlCanonicalName } from '../../src/engine/architectures/qwen2-vl/weight-names.ts';
import { HfFolderError } from '../../src/hf/errors.ts';
import { inspectWeights, loadWeights, type ExpectedTable } from '../../src/hf/weights.ts';
import { copyReference, REFERENCE_DIR, referenceTable } from '../support/hf-folders.ts';

const REFERENCE_PARAMETERS = 227_712;

let table: ExpectedTable;
let reference: Map<string, Float32Array>;
let referenceSha: string;

function f32Tensors(weights: Map<string, Float32Array>, shapes: ExpectedTable, rename = (n: string) => n): SafetensorsTensors {
  const out: SafetensorsTensors = {};
  for (const [name, data] of weights) out[rename(name)] = { dtype: 'F32', shape: [...shapes.get(name)!.shape], data };
  return out;
}

function bf16Bits(values: Float32Array): Uint16Array {
  const words = new Uint32Array(values.buffer, values.byteOffset, values.length);
  return Uint16Array.from(words, (w) => w >>> 16);
}

async function rejects(dir: string, pattern: RegExp, tensor?: string, opts: { table?: ExpectedTable } = {}): Promise<HfFolderError> {
  let caught: unknown;
  try {
    await loadWeights(dir, { expected: opts.table ?? table, canonicalName: qwen2VlCanonicalName });
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof HfFolderError, `expected an HfFolderError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  if (tensor !== undefined) assert.equal(caught.tensor, tensor);
  return caught;
}

describe('loadWeights', () => {
  let folder: Awaited<ReturnType<typeof copyReference>>;
  const made: (typeof folder)[] = [];
  const fresh = async () => {
    folder = await copyReference();
    made.push(folder);
  };
  before(async () => {
    table = await referenceTable();
    const file = await readSafetensors(path.join(REFERENCE_DIR, 'model.safetensors'));
    reference = new Map(Object.entries(file.tensors).map(([n, t]) => [n, t.data as Float32Array]));
    referenceSha = createHash('sha256')
      .update(await readFile(path.join(REFERENCE_DIR, 'model.safetensors')))
      .digest('hex');
  });
  after(async () => Promise.all(made.map((f) => f.dispose())));

  it('loads the reference F32 file exactly, with the sha256 of model.safetensors', async () => {
    const loaded = await loadWeights(REFERENCE_DIR, { expected: table, canonicalName: qwen2VlCanonicalName });
    assert.equal(loaded.parameterCount, REFERENCE_PARAMETERS);
    assert.equal(loaded.sha256, referenceSha);
    assert.deepEqual(loaded.dtypes, ['F32']);
    assert.deepEqual(loaded.files, ['model.safetensors']);
    for (const [name, values] of reference) assert.deepEqual(loaded.weights.get(name), values, name);
    // Checking and hashing without loading (a start whose graphs are cached) reports the same.
    const inspected = await inspectWeights(REFERENCE_DIR, { expected: table, canonicalName: qwen2VlCanonicalName });
    const { weights: _values, ...described } = loaded;
    assert.deepEqual(inspected, described);
  });

  it('loads BF16 and F16 shards with an index, in the later model.language_model / model.visual names', async () => {
    await fresh();
    await rm(path.join(folder.dir, 'model.safetensors'));
    const later = (n: string) => (n.startsWith('visual.') ? `model.${n}` : n.startsWith('model.') ? `model.language_model.${n.slice(6)}` : n);
    const names = [...reference.keys()];
    const shardA: SafetensorsTensors = {};
    const shardB: SafetensorsTensors = {};
    for (const [i, name] of names.entries()) {
      const values = reference.get(name)!;
      const shape = [...table.get(name)!.shape];
      if (i % 2 === 0) shardA[later(name)] = { dtype: 'BF16', shape, data: bf16Bits(values) };
      else {
        // float16 of each value through a Float16-less runtime: write the bits of 0.5 * 2^-k values we can check exactly.
        shardB[later(name)] = { dtype: 'F32', shape, data: values };
      }
    }
    // one F16 tensor with values whose float16 bits are known: 1, -2, 0.5, 65504 (max), 2^-24 (smallest subnormal)
    const f16Name = names[1]!;
    const f16Count = reference.get(f16Name)!.length;
    const f16Bits = new Uint16Array(f16Count);
    const f16Known = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001];
    const f16Values = [1, -2, 0.5, 65504, 2 ** -24];
    for (let i = 0; i < f16Count; i++) f16Bits[i] = f16Known[i % 5]!;
    shardB[later(f16Name)] = { dtype: 'F16', shape: [...table.get(f16Name)!.shape], data: f16Bits };
    const a = encodeSafetensors(shardA, { format: 'pt' });
    const b = encodeSafetensors(shardB, { format: 'pt' });
    await writeFile(path.join(folder.dir, 'model-00001-of-00002.safetensors'), a);
    await writeFile(path.join(folder.dir, 'model-00002-of-00002.safetensors'), b);
    const weightMap = Object.fromEntries([
      ...Object.keys(shardA).map((n) => [n, 'model-00001-of-00002.safetensors']),
      ...Object.keys(shardB).map((n) => [n, 'model-00002-of-00002.safetensors']),
    ]);
    await writeFile(path.join(folder.dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));

    const loaded = await loadWeights(folder.dir, { expected: table, canonicalName: qwen2VlCanonicalName });
    assert.equal(loaded.parameterCount, REFERENCE_PARAMETERS);
    assert.deepEqual(new Set(loaded.dtypes), new Set(['BF16', 'F32', 'F16']));
    for (const [i, name] of names.entries()) {
      const got = loaded.weights.get(name)!;
      const want = reference.get(name)!;
      if (name === f16Name) {
        for (let k = 0; k < got.length; k++) assert.equal(got[k], f16Values[k % 5]);
      } else if (i % 2 === 0) {
        const truncated = new Float32Array(Uint32Array.from(bf16Bits(want), (bits) => bits << 16).buffer);
        assert.deepEqual(got, truncated, name);
        // BF16 keeps 8 bits of mantissa: within 2^-8 relative of the float32 value.
        for (let k = 0; k < got.length; k++) assert.ok(Math.abs(got[k]! - want[k]!) <= Math.abs(want[k]!) * 2 ** -7);
      } else {
        assert.deepEqual(got, want, name);
      }
    }
    const fileSha = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
    const expected = createHash('sha256')
      .update(`${fileSha(a)}  model-00001-of-00002.safetensors\n${fileSha(b)}  model-00002-of-00002.safetensors\n`)
      .digest('hex');
    assert.equal(loaded.sha256, expected);
  });

  it('accepts a tied lm_head that is absent when the table marks it optional, and refuses it otherwise', async () => {
    await fresh();
    const without = new Map(reference);
    without.delete('lm_head.weight');
    await writeFile(path.join(folder.dir, 'model.safetensors'), encodeSafetensors(f32Tensors(without, table)));
    const loaded = await loadWeights(folder.dir, { expected: await referenceTable({ lmHeadOptional: true }), canonicalName: qwen2VlCanonicalName });
    assert.equal(loaded.weights.has('lm_head.weight'), false);
    await rejects(folder.dir, /model\.safetensors: missing tensor "lm_head\.weight" \[512, 64\]/, 'lm_head.weight');
  });

  describe('bad folders', () => {
    before(async () => {
      await fresh();
    });
    const file = () => path.join(folder.dir, 'model.safetensors');
    const rewrite = async (edit: (t: SafetensorsTensors) => void) => {
      const tensors = f32Tensors(reference, table);
      edit(tensors);
      await writeFile(file(), encodeSafetensors(tensors));
    };

    it('no weights at all', async () => {
      await rm(file());
      await rejects(folder.dir, /qwen2-vl-tiny\/model\.safetensors: missing file \(and no model\.safetensors\.index\.json naming shards\)/);
    });

    it('a truncated file names the file and the first tensor cut off', async () => {
      await writeFile(file(), await readFile(path.join(REFERENCE_DIR, 'model.safetensors')));
      await truncate(file(), 900_000);
      const error = await rejects(
        folder.dir,
        /model\.safetensors: tensor "[^"]+": data_offsets \[\d+, \d+\] exceed the \d+-byte data section \(file truncated\?\)/,
      );
      assert.ok(error.tensor);
    });

    it('a file cut inside its header', async () => {
      await writeFile(file(), (await readFile(path.join(REFERENCE_DIR, 'model.safetensors'))).subarray(0, 100));
      await rejects(folder.dir, /model\.safetensors: header length \d+ runs past the end of the 100-byte file/);
    });

    it('a missing tensor, by name and shape', async () => {
      await rewrite((t) => delete t['visual.merger.mlp.2.bias']);
      await rejects(folder.dir, /model\.safetensors: missing tensor "visual\.merger\.mlp\.2\.bias" \[64\]/, 'visual.merger.mlp.2.bias');
    });

    it('a tensor of the wrong shape, with both shapes', async () => {
      await rewrite((t) => {
        t['model.layers.1.self_attn.k_proj.weight'] = { dtype: 'F32', shape: [64, 32], data: new Float32Array(64 * 32) };
      });
      await rejects(
        folder.dir,
        /model\.safetensors: tensor "model\.layers\.1\.self_attn\.k_proj\.weight" has shape \[64, 32\], but config\.json needs \[32, 64\]/,
        'model.layers.1.self_attn.k_proj.weight',
      );
    });

    it('an unknown dtype', async () => {
      const bytes = encodeSafetensors(f32Tensors(reference, table));
      const headerLength = Number(bytes.readBigUInt64LE(0));
      const header = bytes.subarray(8, 8 + headerLength).toString('utf8');
      // Same byte length: "F32" → "F8X" keeps every offset valid, so only the dtype is wrong.
      const bad = header.replace('"model.norm.weight":{"dtype":"F32"', '"model.norm.weight":{"dtype":"F8X"');
      assert.notEqual(bad, header);
      await writeFile(file(), Buffer.concat([bytes.subarray(0, 8), Buffer.from(bad), bytes.subarray(8 + headerLength)]));
      await rejects(folder.dir, /model\.safetensors: tensor "model\.norm\.weight": unsupported dtype "F8X"/, 'model.norm.weight');
    });

    it('a dtype that is not a float weight', async () => {
      await rewrite((t) => {
        t['model.norm.weight'] = { dtype: 'I32', shape: [64], data: new Int32Array(64) };
      });
      await rejects(folder.dir, /tensor "model\.norm\.weight" has dtype I32; weights must be F32, F16, BF16/, 'model.norm.weight');
    });

    it('a tensor the architecture does not have', async () => {
      await rewrite((t) => {
        t['model.layers.0.self_attn.q_norm.weight'] = { dtype: 'F32', shape: [16], data: new Float32Array(16) };
      });
      await rejects(folder.dir, /tensor "model\.layers\.0\.self_attn\.q_norm\.weight" \[16\] is not a parameter of this model's configuration/);
      await rewrite((t) => {
        t['text_model.foo'] = { dtype: 'F32', shape: [1], data: new Float32Array(1) };
      });
      await rejects(folder.dir, /tensor "text_model\.foo" \[1\] is not a parameter of this architecture/, 'text_model.foo');
    });

    it('the same parameter under its old and its new name', async () => {
      await rewrite((t) => {
        t['model.language_model.norm.weight'] = t['model.norm.weight']!;
      });
      await rejects(folder.dir, /is the same parameter as/);
    });

    it('shards: a missing shard, and an index that lists a tensor its shard lacks', async () => {
      await rewrite(() => undefined);
      await rm(file());
      const tensors = f32Tensors(reference, table);
      await writeFile(path.join(folder.dir, 'model-00001-of-00001.safetensors'), encodeSafetensors(tensors));
      const weightMap: Record<string, string> = Object.fromEntries(Object.keys(tensors).map((n) => [n, 'model-00001-of-00001.safetensors']));
      const index = path.join(folder.dir, 'model.safetensors.index.json');
      await writeFile(index, JSON.stringify({ weight_map: { ...weightMap, 'model.extra': 'model-00002-of-00002.safetensors' } }));
      await rejects(folder.dir, /model-00002-of-00002\.safetensors: missing shard \(listed in model\.safetensors\.index\.json\)/);
      await writeFile(index, JSON.stringify({ weight_map: { ...weightMap, 'model.extra': 'model-00001-of-00001.safetensors' } }));
      await rejects(
        folder.dir,
        /model-00001-of-00001\.safetensors: tensor "model\.extra" is listed in model\.safetensors\.index\.json but not stored in this shard/,
        'model.extra',
      );
      await writeFile(index, JSON.stringify({ weight_map: { ...weightMap, 'model.norm.weight': '../elsewhere.safetensors' } }));
      await rejects(
        folder.dir,
        /index\.json: tensor "model\.norm\.weight" maps to "\.\.\/elsewhere\.safetensors", which is not a \.safetensors file in this folder/,
      );
      await writeFile(index, '{"weight_map": {"a": ');
      await rejects(folder.dir, /model\.safetensors\.index\.json: not valid JSON \(truncated\?\)/);
      await rm(index);
      await rm(path.join(folder.dir, 'model-00001-of-00001.safetensors'));
    });
  });
});
