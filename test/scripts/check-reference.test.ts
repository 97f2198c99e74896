// npm run check:reference on the shared reference folder (ok, every network tensor within 1e-4), and
// on a copy with one weight nudged (not ok, exit code 1): the check can fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { encodeSafetensors, readSafetensors } from '../../src/engine/export/safetensors.ts';

const ROOT = join(import.meta.dirname, '../..');
const REFERENCE = join(ROOT, '../shared/reference/qwen2-vl-tiny');
const run = promisify(execFile);

async function check(dir: string): Promise<{ code: number; summary: Record<string, unknown> }> {
  const result = await run(process.execPath, ['--import', 'tsx', 'scripts/check-reference.ts', '--model', dir, '--json'], { cwd: ROOT }).then(
    (r) => ({ code: 0, stdout: r.stdout }),
    (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
  );
  const lines = result.stdout.trim().split('\n');
  return { code: result.code, summary: JSON.parse(lines[lines.length - 1]) };
}

test('check:reference --json on the shared reference: ok, last line is the summary object', async () => {
  const { code, summary } = await check(REFERENCE);
  assert.equal(code, 0);
  assert.deepEqual(Object.keys(summary), ['ok', 'max_abs', 'generated_ids_equal', 'positions_equal', 'grid_equal', 'pixel_max_abs', 'pixel_mean_abs']);
  assert.equal(summary.ok, true);
  const maxAbs = summary.max_abs as Record<string, number>;
  assert.deepEqual(Object.keys(maxAbs), ['vision_embeds', 'inputs_embeds', 'hidden_layer0', 'logits', 'step_logits']);
  for (const [k, v] of Object.entries(maxAbs)) assert.ok(v <= 1e-4, `${k} ${v}`);
  assert.equal(summary.generated_ids_equal, true);
  assert.equal(summary.positions_equal, true);
  assert.equal(summary.grid_equal, true);
  assert.ok((summary.pixel_mean_abs as number) < 0.01);
});

test('check:reference on a copy with the final norm nudged by 1%: not ok, exit code 1', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'check-ref-'));
  try {
    await cp(REFERENCE, dir, { recursive: true });
    // the shared reference is read-only; its copy must be writable (and removable without root)
    for (const sub of ['', 'golden']) {
      await chmod(join(dir, sub), 0o755);
      for (const f of await readdir(join(dir, sub), { withFileTypes: true })) if (f.isFile()) await chmod(join(dir, sub, f.name), 0o644);
    }
    const { tensors } = await readSafetensors(join(REFERENCE, 'model.safetensors'));
    const norm = tensors['model.norm.weight'].data as Float32Array;
    for (let i = 0; i < norm.length; i++) norm[i] *= 1.01;
    await writeFile(join(dir, 'model.safetensors'), encodeSafetensors(tensors, { format: 'pt' }));
    const { code, summary } = await check(dir);
    assert.equal(code, 1);
    assert.equal(summary.ok, false);
    const maxAbs = summary.max_abs as Record<string, number>;
    assert.ok(maxAbs.vision_embeds <= 1e-4 && maxAbs.hidden_layer0 <= 1e-4, 'layers before the final norm still agree');
    assert.ok(maxAbs.logits > 1e-4);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
