// The shared Qwen2-VL reference folder, and bad copies of it built in temp dirs for loader tests.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readSafetensorsHeader } from '../../src/engine/export/safetensors.ts';
import type { ExpectedTable } from '../../src/hf/weights.ts';

/** Relative to the repository root, where tests run. */
export const REFERENCE_ROOT = path.resolve('../shared/reference');
export const REFERENCE_DIR = path.join(REFERENCE_ROOT, 'qwen2-vl-tiny');
export const GOLDEN_DIR = path.join(REFERENCE_DIR, 'golden');

/** The reference file's own names and shapes as the expected table (lm_head optional when asked). */
export async function referenceTable(opts: { lmHeadOptional?: boolean } = {}): Promise<ExpectedTable> {
  const header = await readSafetensorsHeader(path.join(REFERENCE_DIR, 'model.safetensors'));
  return new Map(header.entries.map((e) => [e.name, { shape: e.shape, optional: opts.lmHeadOptional === true && e.name === 'lm_head.weight' }]));
}

/** A writable copy of the reference folder (golden/ left out); remove it with `dispose`. */
export async function copyReference(): Promise<{ dir: string; dispose(): Promise<void> }> {
  const root = await mkdtemp(path.join(tmpdir(), 'clinvqa-hf-'));
  const dir = path.join(root, 'qwen2-vl-tiny');
  await cp(REFERENCE_DIR, dir, { recursive: true, filter: (src) => !src.includes(`${path.sep}golden`) });
  // The shared copy is read-only; its copies must be editable.
  const { chmod, readdir } = await import('node:fs/promises');
  await chmod(dir, 0o755);
  for (const name of await readdir(dir)) await chmod(path.join(dir, name), 0o644);
  return { dir, dispose: () => rm(root, { recursive: true, force: true }) };
}

export async function editJson(file: string, edit: (json: Record<string, unknown>) => void): Promise<void> {
  const json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(json);
  await writeFile(file, JSON.stringify(json, null, 2));
}
