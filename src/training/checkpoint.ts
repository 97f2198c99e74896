// Self-describing training checkpoints (nanoGPT style): weights, optimizer moments, the step and
// where in the data the run stands, the model config and the trainer config with its seed — enough
// to resume a run and get exactly the next step it would have taken. Each checkpoint is written to
// a temporary directory and renamed into place, so a crash never leaves a half-written one.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, type SafetensorsTensors } from '../engine/export/safetensors.ts';
import type { ModelConfig } from '../engine/model/config.ts';
import type { Qwen2VLConfig } from '../engine/architectures/qwen2-vl/config.ts';
import type { Weights } from '../engine/model/params.ts';
import type { AdamWState } from '../engine/optim/adamw.ts';
import { renameIntoPlace, tempPath, writeFilesSynced } from '../files/durable-file.ts';

export interface TrainerState {
  method: 'sft' | 'grpo';
  /** Optimizer updates done so far. */
  step: number;
  totalSteps: number;
  /** Anything else the trainer needs to continue exactly (epoch, position in the shuffled data…). */
  cursor: Record<string, number>;
  seed: number;
  modelConfig: ModelConfig | Qwen2VLConfig;
  trainerConfig: unknown;
  createdAt: string;
  /**
   * Wall seconds of training up to this checkpoint, summed over every process that worked on the
   * run, so a resumed run's manifest reports the whole run and not only its last process. Absent in
   * checkpoints written before it was recorded (counted as 0).
   */
  trainingSeconds?: number;
}

export interface Checkpoint {
  dir: string;
  state: TrainerState;
  weights: Weights;
  optimizer: AdamWState | null;
}

const STEP_DIR = /^step-(\d{8})$/;

function toTensors(arrays: Map<string, Float32Array> | Record<string, Float32Array>, prefix = ''): SafetensorsTensors {
  const out: SafetensorsTensors = {};
  const entries = arrays instanceof Map ? [...arrays] : Object.entries(arrays);
  for (const [name, data] of entries) out[prefix + name] = { dtype: 'F32', shape: [data.length], data };
  return out;
}

export async function saveCheckpoint(runDir: string, state: TrainerState, weights: Weights, optimizer: AdamWState | null, keep = 2): Promise<string> {
  const root = join(runDir, 'checkpoints');
  await mkdir(root, { recursive: true });
  const name = `step-${String(state.step).padStart(8, '0')}`;
  const tmp = tempPath(root, name, 'directory');
  await mkdir(tmp);
  const final = join(root, name);
  try {
    await writeSafetensors(join(tmp, 'model.safetensors'), toTensors(weights));
    if (optimizer) {
      await writeSafetensors(
        join(tmp, 'optimizer.safetensors'),
        { ...toTensors(optimizer.m, 'm.'), ...toTensors(optimizer.v, 'v.') },
        { step: String(optimizer.step) },
      );
    }
    await writeFilesSynced(tmp, [['trainer-state.json', JSON.stringify(state, null, 1)]]);
    // A checkpoint of the same step left by an interrupted earlier attempt is replaced by this one.
    await rm(final, { recursive: true, force: true });
    await renameIntoPlace(tmp, final);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
  // Older checkpoints beyond `keep` are dropped only once the new one is safely in place.
  const steps = (await listCheckpointDirs(runDir)).slice(0, -keep);
  for (const old of steps) await rm(old, { recursive: true, force: true });
  return final;
}

/** Checkpoint directories of a run, oldest first (temporary leftovers of a crash are ignored). */
export async function listCheckpointDirs(runDir: string): Promise<string[]> {
  const root = join(runDir, 'checkpoints');
  const names = await readdir(root).catch(() => [] as string[]);
  return names
    .filter((n) => STEP_DIR.test(n))
    .sort()
    .map((n) => join(root, n));
}

export async function loadCheckpoint(dir: string, withOptimizer = true): Promise<Checkpoint> {
  const state = JSON.parse(await readFile(join(dir, 'trainer-state.json'), 'utf8')) as TrainerState;
  const model = await readSafetensors(join(dir, 'model.safetensors'));
  const weights: Weights = new Map();
  for (const [name, t] of Object.entries(model.tensors)) weights.set(name, t.data as Float32Array);
  let optimizer: AdamWState | null = null;
  if (withOptimizer) {
    const opt = await readSafetensors(join(dir, 'optimizer.safetensors')).catch(() => null);
    if (opt) {
      const m: Record<string, Float32Array> = {};
      const v: Record<string, Float32Array> = {};
      for (const [name, t] of Object.entries(opt.tensors)) (name.startsWith('m.') ? m : v)[name.slice(2)] = t.data as Float32Array;
      optimizer = { step: Number(opt.metadata.step), m, v };
    }
  }
  return { dir, state, weights, optimizer };
}

export async function latestCheckpoint(runDir: string): Promise<Checkpoint | null> {
  const dirs = await listCheckpointDirs(runDir);
  return dirs.length ? loadCheckpoint(dirs[dirs.length - 1]) : null;
}

/**
 * The performance.now() at which a run would have begun had all of its training happened in this
 * process: `started` (this process's start) moved back by the seconds a resumed checkpoint records.
 */
export function runStartTime(started: number, resumed: Pick<Checkpoint, 'state'> | null): number {
  return started - (resumed?.state.trainingSeconds ?? 0) * 1000;
}

export function secondsSince(start: number): number {
  return (performance.now() - start) / 1000;
}
