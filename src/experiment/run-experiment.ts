// Runs an experiment file: the SFT baseline is evaluated as it is, each distinct GRPO config is
// trained once in <out>/<row id> and evaluated by its trainer on the same validation cases, and the
// report and charts are written. Everything is resumable: a finished row leaves result.json (keyed
// by its config and the identity of its init package) and is reused; an unfinished one continues
// from its last checkpoint; a run directory left by a different config is refused, never mixed in.
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { basename, dirname, join } from 'node:path';
import { loadVqaUnion } from '../data/jsonl-loader.ts';
import { readJson, sha256Hex, writeJsonDurably } from '../files/durable-file.ts';
import type { VqaCase } from '../data/vqa-case.ts';
import { evaluateByDataset } from '../eval/evaluate.ts';
import { loadRuntime } from '../runtime/model-runtime.ts';
import { listCheckpointDirs } from '../training/checkpoint.ts';
import { trainGrpo } from '../training/grpo/grpo-trainer.ts';
import { buildPatchCache } from '../training/image-cache.ts';
import { SFT_DEFAULTS } from '../training/sft/sft-config.ts';
import { trainSft } from '../training/sft/sft-trainer.ts';
import { spreadSample } from '../training/run-output.ts';
import { chartPaths, configKey, planRuns, stableJson, type ExperimentConfig, type PlannedRun } from './experiment-config.ts';
import type { ExperimentResult, Metrics, RowResult } from './experiment-result.ts';
import { renderReport } from './report-markdown.ts';
import { readRunCurves, type StepPoint } from './run-curves.ts';
import { lineChart, type Series } from './svg-chart.ts';

export interface RunExperimentOptions {
  configPath: string;
  /** false = write the report from what earlier invocations finished, training nothing. */
  train?: boolean;
  quiet?: boolean;
}

interface StoredResult {
  key: string;
  metrics: Metrics;
  steps: number;
  wall_seconds: number;
  resumed_from_step: number;
  finished_at: string;
}

async function exists(p: string): Promise<boolean> {
  return (await stat(p).catch(() => null)) !== null;
}

/** A package's identity is its manifest (which holds the sha256 of every file); null if `dir` is none. */
async function packageIdentity(dir: string): Promise<string | null> {
  const bytes = await readFile(join(dir, 'manifest.json')).catch(() => null);
  return bytes ? sha256Hex(bytes) : null;
}

async function loadCases(paths: string[], what: string): Promise<{ cases: VqaCase[]; sha256: string }> {
  const u = await loadVqaUnion(paths);
  if (u.errors.length) throw new Error(`${what}: ${u.errors.length} bad records, first: ${u.errors[0].file}:${u.errors[0].line} ${u.errors[0].message}`);
  return { cases: u.cases, sha256: u.sha256 };
}

function lastStepFromCheckpoints(dirs: string[]): number {
  return dirs.reduce((m, d) => Math.max(m, Number(/step-(\d+)$/.exec(d)?.[1] ?? 0)), 0);
}

export async function runExperiment(cfg: ExperimentConfig, opts: RunExperimentOptions): Promise<ExperimentResult> {
  const train = opts.train ?? true;
  const say = (m: string) => {
    if (!opts.quiet) process.stderr.write(`experiment: ${m}\n`);
  };
  const startedAt = new Date().toISOString();
  const machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
    loadAverageAtStart: Number(os.loadavg()[0].toFixed(2)),
  };

  // The SFT package: required for the baseline and every `init: sft` row; a smoke run trains its own.
  if (!(await exists(join(cfg.sft_init, 'manifest.json')))) {
    if (!train) say(`${cfg.sft_init} holds no model package`);
    else if (cfg.sft_train) {
      say(`training the SFT init into ${cfg.sft_init}`);
      await trainSft(
        { ...SFT_DEFAULTS, ...cfg.sft_train, validation: [], out: join(cfg.out, 'sft-init-run'), package_dir: cfg.sft_init },
        { quiet: opts.quiet },
      );
    } else {
      throw new Error(`${cfg.sft_init} is not a model package: train it first (npm run train:sft -- --config configs/sft.yaml) or point sft_init elsewhere`);
    }
  }
  const sftIdentity = await packageIdentity(cfg.sft_init);

  const trainSet = await loadCases(cfg.base.train, 'train');
  const validation = await loadCases(cfg.validation, 'validation');
  const evalCases = spreadSample(validation.cases, cfg.eval_samples);
  const evalPerDataset: Record<string, number> = {};
  for (const c of evalCases) evalPerDataset[c.dataset] = (evalPerDataset[c.dataset] ?? 0) + 1;

  const runs = planRuns(cfg);
  const runOfRow = new Map<string, PlannedRun>();
  for (const run of runs) for (const id of run.rows) runOfRow.set(id, run);
  const stored = new Map<string, { result: StoredResult; reused: boolean }>();

  // 1. SFT baseline rows: evaluate the package itself on the same cases the GRPO runs are scored on.
  for (const row of cfg.rows.filter((r) => r.kind === 'sft')) {
    const dir = join(cfg.out, row.id);
    const key = sha256Hex(stableJson({ sft: sftIdentity, validation: validation.sha256, eval_samples: cfg.eval_samples }));
    const prev = await readJson<StoredResult>(join(dir, 'result.json'));
    if (prev?.key === key) {
      say(`${row.id}: reusing ${join(dir, 'result.json')}`);
      stored.set(row.id, { result: prev, reused: true });
      continue;
    }
    if (!train || !sftIdentity) continue;
    say(`${row.id}: evaluating ${cfg.sft_init} on ${evalCases.length} validation cases`);
    const t0 = performance.now();
    const rt = await loadRuntime(cfg.sft_init, { executionProviders: ['cpu'], intraOpThreads: cfg.base.threads });
    try {
      const patches = await buildPatchCache(
        evalCases.map((c) => c.imagePath),
        rt.config,
      );
      const metrics = await evaluateByDataset(rt, evalCases, patches);
      const result: StoredResult = {
        key,
        metrics,
        steps: 0,
        wall_seconds: (performance.now() - t0) / 1000,
        resumed_from_step: 0,
        finished_at: new Date().toISOString(),
      };
      await mkdir(dir, { recursive: true });
      await writeJsonDurably(join(dir, 'result.json'), result);
      stored.set(row.id, { result, reused: false });
    } finally {
      await rt.dispose();
    }
  }

  // 2. GRPO runs, one per distinct config.
  for (const [i, run] of runs.entries()) {
    const dir = run.config.out;
    const initIdentity = run.config.init === 'scratch' ? null : await packageIdentity(run.config.init);
    const key = configKey(run.config, initIdentity ?? run.config.init);
    const prev = await readJson<StoredResult>(join(dir, 'result.json'));
    if (prev?.key === key) {
      say(`${run.rows.join(', ')}: reusing ${join(dir, 'result.json')}`);
      stored.set(run.id, { result: prev, reused: true });
      continue;
    }
    const marker = await readJson<{ key: string }>(join(dir, 'experiment-run.json'));
    if (marker && marker.key !== key) {
      throw new Error(`${dir} holds a run of a different config (or of a different init package); delete that directory to rerun row ${run.id}`);
    }
    if (!train) continue;
    await mkdir(dir, { recursive: true });
    await writeJsonDurably(join(dir, 'experiment-run.json'), { key, rows: run.rows, config: run.config });
    const resumedFrom = lastStepFromCheckpoints(await listCheckpointDirs(dir).catch(() => []));
    say(`run ${i + 1}/${runs.length}: ${run.rows.join(', ')}${resumedFrom ? ` (resuming at step ${resumedFrom})` : ''}`);
    const t0 = performance.now();
    const r = await trainGrpo(run.config, { trainCases: trainSet.cases, trainSha256: trainSet.sha256, validationCases: validation.cases, quiet: opts.quiet });
    if (r.steps < run.config.max_steps || !r.validation)
      throw new Error(`${run.id}: stopped at step ${r.steps} of ${run.config.max_steps} without validation metrics`);
    const result: StoredResult = {
      key,
      metrics: r.validation,
      steps: r.steps,
      wall_seconds: (performance.now() - t0) / 1000,
      resumed_from_step: resumedFrom,
      finished_at: new Date().toISOString(),
    };
    await writeJsonDurably(join(dir, 'result.json'), result);
    stored.set(run.id, { result, reused: false });
  }

  // 3. One result per row (rows sharing a config share their run's result and curves).
  const rows: RowResult[] = [];
  for (const row of cfg.rows) {
    const run = runOfRow.get(row.id);
    const runDir = run ? run.config.out : join(cfg.out, row.id);
    const s = stored.get(run ? run.id : row.id);
    const curves = run ? await readRunCurves(runDir) : [];
    rows.push({
      row,
      runDir,
      metrics: s?.result.metrics ?? null,
      steps: s?.result.steps ?? curves.length,
      trainSeconds: curves.reduce((a, p) => a + p.stepMs, 0) / 1000,
      wallSeconds: s?.result.wall_seconds ?? null,
      resumedFromStep: s?.result.resumed_from_step ?? 0,
      reused: s?.reused ?? false,
      finishedAt: s?.result.finished_at ?? null,
      curves,
    });
  }
  return {
    config: cfg,
    configPath: opts.configPath,
    command: `npm run experiment -- --config ${opts.configPath}`,
    startedAt,
    finishedAt: new Date().toISOString(),
    machine,
    sft: { dir: cfg.sft_init, id: basename(cfg.sft_init), manifestSha256: sftIdentity },
    data: {
      train: cfg.base.train,
      trainCases: trainSet.cases.length,
      trainSha256: trainSet.sha256,
      validation: cfg.validation,
      evalCases: evalCases.length,
      evalPerDataset,
    },
    rows,
    complete: rows.every((r) => r.metrics !== null),
  };
}

/** The per-step charts of every GRPO row (rows sharing a run appear once, under the first row's label). */
export function experimentCharts(result: ExperimentResult): { reward: string; accuracy: string; length: string } {
  const seen = new Set<string>();
  const runs = result.rows.filter((r) => r.row.kind === 'grpo' && r.curves.length && !seen.has(r.runDir) && seen.add(r.runDir));
  const series = (pick: (p: StepPoint) => number | null): Series[] =>
    runs.map((r) => ({
      name: r.row.id,
      points: r.curves.flatMap((p) => {
        const y = pick(p);
        return y === null ? [] : [[p.step, y] as const];
      }),
    }));
  const smooth = 5;
  const note = `(moving average over ${smooth} steps)`;
  return {
    reward: lineChart({ title: `Combined reward per step ${note}`, xLabel: 'step', yLabel: 'mean weighted reward', series: series((p) => p.reward), smooth }),
    accuracy: lineChart({
      title: `Accuracy reward per step ${note}`,
      xLabel: 'step',
      yLabel: 'mean accuracy reward',
      series: series((p) => p.accuracyReward),
      smooth,
    }),
    length: lineChart({
      title: `Mean completion length per step ${note}`,
      xLabel: 'step',
      yLabel: 'tokens',
      series: series((p) => p.completionLength),
      smooth,
    }),
  };
}

/** Writes the Markdown report and its SVG charts; returns the paths written. */
export async function writeExperimentReport(result: ExperimentResult): Promise<string[]> {
  const paths = chartPaths(result.config.report);
  const charts = experimentCharts(result);
  await mkdir(dirname(result.config.report), { recursive: true });
  const files: [string, string][] = [
    [paths.reward, charts.reward],
    [paths.accuracy, charts.accuracy],
    [paths.length, charts.length],
    [result.config.report, renderReport(result, { reward: basename(paths.reward), accuracy: basename(paths.accuracy), length: basename(paths.length) })],
  ];
  for (const [p, text] of files) await writeFile(p, text);
  return files.map(([p]) => p);
}
