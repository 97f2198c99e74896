// What every training run does with its data at the start and its model at the end: load the
// JSONL splits (refusing bad records), then score the trained weights on validation and write the
// evaluated model package. Shared by the SFT and GRPO trainers.
import { resolve } from 'node:path';
import { loadVqaUnion } from '../data/jsonl-loader.ts';
import type { VqaTokenizer } from '../data/tokenizer.ts';
import type { VqaCase } from '../data/vqa-case.ts';
import type { ModelConfig } from '../engine/model/config.ts';
import type { ParamSpec, Weights } from '../engine/model/params.ts';
import { exportModelPackage } from '../registry/package-export.ts';
import { evaluateByDataset } from '../eval/evaluate.ts';
import type { EvalMetrics, JsonObject } from '../registry/manifest.ts';
import { isPathTaken } from '../registry/model-package.ts';
import { runtimeFromWeights } from '../runtime/model-runtime.ts';
import type { ModelRuntime } from '../runtime/types.ts';
import { secondsSince } from './checkpoint.ts';
import type { PatchCache } from './image-cache.ts';
import type { RunLog } from './run-log.ts';

export type SplitMetrics = Record<string, Record<string, number | null>>;

export async function loadCases(paths: string[], what: string): Promise<{ cases: VqaCase[]; sha256: string }> {
  const u = await loadVqaUnion(paths);
  if (u.errors.length) throw new Error(`${what}: ${u.errors.length} bad records, first: ${u.errors[0].file}:${u.errors[0].line} ${u.errors[0].message}`);
  return { cases: u.cases, sha256: u.sha256 };
}

/** `n` cases evenly spaced over `cases` (all when n is 0 or too large), so every split is represented. */
export function spreadSample<T>(cases: readonly T[], n: number): T[] {
  if (n <= 0 || n >= cases.length) return [...cases];
  return Array.from({ length: n }, (_, i) => cases[Math.floor((i * cases.length) / n)]);
}

/** Manifest metrics are numbers; a rate over an empty subset (null) is left out. */
export function stripNulls(m: SplitMetrics): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const [k, v] of Object.entries(m)) out[k] = Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null)) as Record<string, number>;
  return out;
}

/** Metrics per named case set ('validation', 'held_out', …), each per dataset and overall ('all'). */
export type SetMetrics = Record<string, SplitMetrics>;

export interface FinishRunInput {
  method: 'sft' | 'grpo';
  config: ModelConfig;
  specs: readonly ParamSpec[];
  weights: Weights;
  tokenizer: VqaTokenizer;
  tokenizerBytes: Uint8Array;
  /** Case sets scored at the end, each recorded under its name in the manifest's eval; empty sets are skipped. */
  evalSets: Readonly<Record<string, readonly VqaCase[]>>;
  patches: PatchCache;
  threads: number;
  log: RunLog;
  /** '' = no package. */
  packageDir: string;
  version: string;
  parent: string | null;
  seed: number;
  training: JsonObject;
  dataset: { name: string; sha256: string };
  /** performance.now() at which the run, counting the time of earlier processes, began (runStartTime). */
  startedAt: number;
  /** The starting model's scores on the same sets; the manifest then records eval.before and eval.after. */
  baseline?: SetMetrics;
  /** Answers timed per set for the latency figures (default: evaluate.ts's). */
  latencySamples?: number;
  /** Called before the final evaluation and before the package is written; throwing abandons the ending. */
  onPhase?(phase: 'evaluating' | 'packaging'): void | Promise<void>;
}

/** The dataset a run trained on, named by its JSONL files (`vqa-rad/train.jsonl+slake/train.jsonl`). */
export function datasetOf(trainPaths: readonly string[], sha256: string): { name: string; sha256: string } {
  return { name: trainPaths.map((p) => p.split(/[\\/]/).slice(-2).join('/')).join('+'), sha256 };
}

/**
 * Packages are immutable, and a run writes its package only at the end: refuse at the start a
 * package_dir that is already taken, rather than after hours of training. '' means the run writes
 * no package.
 */
export async function assertPackageDirFree(packageDir: string): Promise<void> {
  if (!packageDir) return;
  const target = resolve(packageDir);
  if (await isPathTaken(target))
    throw new Error(`package_dir ${target} already exists and packages are immutable: move it away or choose another package_dir, then train`);
}

/** Greedy metrics of a runtime on each non-empty case set. */
export async function scoreSets(
  rt: ModelRuntime,
  sets: Readonly<Record<string, readonly VqaCase[]>>,
  patches: PatchCache,
  opts: { latencySamples?: number; log?: RunLog; between?(): void | Promise<void> } = {},
): Promise<SetMetrics> {
  const out: SetMetrics = {};
  for (const [name, cases] of Object.entries(sets)) {
    if (cases.length === 0) continue;
    await opts.between?.();
    out[name] = await evaluateByDataset(rt, cases, patches, {
      ...(opts.latencySamples !== undefined ? { latencySamples: opts.latencySamples } : {}),
      ...(opts.log ? { onProgress: (d: number, n: number) => opts.log!.progress(`eval ${name} ${d}/${n}`) } : {}),
    });
  }
  return out;
}

/** scoreSets for in-memory weights. */
export async function evaluateWeights(
  r: Pick<FinishRunInput, 'method' | 'config' | 'weights' | 'tokenizer' | 'patches' | 'threads' | 'log' | 'latencySamples'>,
  sets: Readonly<Record<string, readonly VqaCase[]>>,
  between?: () => void | Promise<void>,
): Promise<SetMetrics> {
  const rt = await runtimeFromWeights(`${r.method}-eval`, r.config, r.weights, r.tokenizer, { executionProviders: ['cpu'], intraOpThreads: r.threads });
  try {
    return await scoreSets(rt, sets, r.patches, { latencySamples: r.latencySamples, log: r.log, between });
  } finally {
    await rt.dispose();
  }
}

/** Manifest metrics: each set's numbers with empty-subset rates left out. */
export function manifestMetrics(scores: SetMetrics): Record<string, Record<string, Record<string, number>>> {
  return Object.fromEntries(Object.entries(scores).map(([name, m]) => [name, stripNulls(m)]));
}

/** The end of every training run: score the final weights on the evaluation sets, then write the package. */
export async function evaluateAndPackage(r: FinishRunInput): Promise<{ scores: SetMetrics; packageDir: string | null; wallSeconds: number }> {
  let scores: SetMetrics = {};
  if (Object.values(r.evalSets).some((cases) => cases.length > 0)) {
    await r.onPhase?.('evaluating');
    scores = await evaluateWeights(r, r.evalSets, () => r.onPhase?.('evaluating'));
    r.log.info(`evaluation: ${JSON.stringify(scores)}`);
  }
  const wallSeconds = secondsSince(r.startedAt);
  if (!r.packageDir) return { scores, packageDir: null, wallSeconds };
  await r.onPhase?.('packaging');
  const packageDir = resolve(r.packageDir);
  const after = manifestMetrics(scores);
  await exportModelPackage(packageDir, {
    config: r.config,
    specs: r.specs,
    weights: r.weights,
    tokenizerJson: r.tokenizerBytes,
    manifest: {
      id: packageDir.split(/[\\/]/).pop()!,
      version: r.version,
      parent: r.parent,
      method: r.method,
      seed: r.seed,
      training: { ...r.training, wall_seconds: Math.round(wallSeconds) },
      dataset: r.dataset,
      eval: (r.baseline ? { before: manifestMetrics(r.baseline), after } : after) as unknown as EvalMetrics,
    },
  });
  r.log.info(`package written: ${packageDir}`);
  return { scores, packageDir, wallSeconds };
}
