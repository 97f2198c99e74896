// Serving graphs written to disk with their weights as ONNX external data (what a model past
// protobuf's 2 GB limit needs), forced here on the small reference model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors } from '../../../../src/engine/export/safetensors.ts';
import { exportQwen2VLServing } from '../../../../src/engine/architectures/qwen2-vl/export.ts';
import { buildQwen2VLServingGraphs, writeQwen2VLServingGraphs } from '../../../../src/engine/architectures/qwen2-vl/graphs.ts';
import { paramCount } from '../../../../src/engine/architectures/qwen2-vl/params.ts';
import {
  embedIds,
  encodeImages,
  greedyDecode,
  mergeImageFeatures,
  openQwen2VLSessions,
  type Qwen2VLSessions,
} from '../../../../src/engine/architectures/qwen2-vl/sessions.ts';
import { readQwen2VLFolderF32 } from '../../../../src/engine/architectures/qwen2-vl/weights.ts';

const DIR = join(import.meta.dirname, '../../../../../shared/reference/qwen2-vl-tiny');

async function goldenRun(s: Qwen2VLSessions) {
  const kase = JSON.parse(await readFile(join(DIR, 'golden/case.json'), 'utf8'));
  const pixels = (await readSafetensors(join(DIR, 'golden/tensors.safetensors'))).tensors.pixel_values.data as Float32Array;
  const vis = await encodeImages(s, pixels, kase.image_grid_thw);
  const embeds = mergeImageFeatures(await embedIds(s, kase.input_ids), kase.input_ids, vis.features, s.config);
  const r = await greedyDecode(s, embeds, kase.position_ids, kase.rope_delta, kase.generated_ids.length);
  return { ids: r.ids, stepLogits: r.stepLogits, features: vis.features, expected: kase.generated_ids as number[] };
}

test('exportQwen2VLServing: one shared external weights file, graphs by path give the in-memory results exactly', async () => {
  const { config, weights } = await readQwen2VLFolderF32(DIR);
  const inMemory = await goldenRun(await openQwen2VLSessions(config, buildQwen2VLServingGraphs(config, { kind: 'arrays', weights })));
  const dir = await mkdtemp(join(tmpdir(), 'qwen2vl-export-'));
  try {
    const out = await exportQwen2VLServing(dir, config, new Map(weights), { release: true });
    assert.ok(out.weightBytes >= paramCount(config) * 4);
    for (const f of [out.vision, out.embed, out.decoder]) {
      assert.ok((await stat(f)).size < 64 * 1024, `${f} holds no weights`);
    }
    const fromDisk = await goldenRun(await openQwen2VLSessions(config, out));
    assert.deepEqual(fromDisk.ids, inMemory.expected);
    assert.deepEqual(fromDisk.stepLogits, inMemory.stepLogits);
    assert.deepEqual(fromDisk.features, inMemory.features);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('writeQwen2VLServingGraphs with externalData "always": <file>_data beside each graph, same results', async () => {
  const { config, weights } = await readQwen2VLFolderF32(DIR);
  const graphs = buildQwen2VLServingGraphs(config, { kind: 'arrays', weights });
  const inMemory = await goldenRun(await openQwen2VLSessions(config, graphs));
  const dir = await mkdtemp(join(tmpdir(), 'qwen2vl-extdata-'));
  try {
    const written = await writeQwen2VLServingGraphs(dir, graphs, { externalData: 'always' });
    for (const w of Object.values(written)) {
      assert.ok(w.dataPath && w.externalTensors > 0, `${w.path} has external data`);
      assert.ok((await stat(w.path)).size < 64 * 1024);
    }
    const fromDisk = await goldenRun(
      await openQwen2VLSessions(config, { vision: written.vision.path, embed: written.embed.path, decoder: written.decoder.path }),
    );
    assert.deepEqual(fromDisk.stepLogits, inMemory.stepLogits);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
