// What every training run does with its data at the start and its model at the end: load the
// JSONL splits (refusing bad records), then score the trained weights on validation and write the
// evaluated model package. Shared by the SFT and GRPO trainers.
import { resolve } from 'node:path';
import { loadVqaUnion } from '../data/jsonl-loader.ts';
import type { VqaTokenizer } from '../data/tokenizer.ts';
import type { VqaCase } from '../data/vqa-case.ts';
import type { ModelConfig } from '../engine/model/config.ts';
import type { ParamSpec, Weights } from '../engine/model/params.ts';
import { exportModelPackage } from '../engine/export/package-export.ts';
import { evaluateByDataset } from '../eval/evaluate.ts';
import type { JsonObject } from '../registry/manifest.ts';
import { isPathTaken } from '../registry/model-package.ts';
import { runtimeFromWeights } from '../runtime/model-runtime.ts';
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

export interface FinishRunInput {
  method: 'sft' | 'grpo';
  config: ModelConfig;
  specs: readonly ParamSpec[];
  weights: Weights;
  tokenizer: VqaTokenizer;
  tokenizerBytes: Uint8Array;
  evalCases: readonly VqaCase[];
  patches: PatchCache;
  threads: number;
  log: RunLog;
  /** '' = no package. */
  packageDir: string;
  version: string;
  parent: string | null;
  seed: number;
  training: JsonObject;
  trainPaths: readonly string[];
  trainSha256: string;
  /** performance.now() at which the run, counting the time of earlier processes, began (runStartTime). */
  startedAt: number;
}

/**
 * Packages are immutable, and a run writes its package only at the end: refuse at the start a
 * package_dir that is already taken, rather than after hours of training (an 11-minute SFT run
 * once ended that way). '' means the run writes no package.
 */
export async function assertPackageDirFree(packageDir: string): Promise<void> {
  if (!packageDir) return;
  const target = resolve(packageDir);
  if (await isPathTaken(target)) throw new Error(`package_dir ${target} already exists and packages are immutable: move it away or choose another package_dir, then train`);
}

/** Greedy validation metrics of in-memory weights, per dataset and overall ('all'). */
export async function evaluateWeights(
  r: Pick<FinishRunInput, 'method' | 'config' | 'weights' | 'tokenizer' | 'evalCases' | 'patches' | 'threads' | 'log'>,
): Promise<SplitMetrics> {
  const rt = await runtimeFromWeights(`${r.method}-eval`, r.config, r.weights, r.tokenizer, { executionProviders: ['cpu'], intraOpThreads: r.threads });
  try {
    return await evaluateByDataset(rt, r.evalCases, r.patches, { onProgress: (d, n) => r.log.progress(`eval ${d}/${n}`) });
  } finally {
    await rt.dispose();
  }
}

export async function evaluateAndPackage(r: FinishRunInput): Promise<{ metrics: SplitMetrics | null; packageDir: string | null; wallSeconds: number }> {
  let metrics: SplitMetrics | null = null;
  if (r.evalCases.length) {
    metrics = await evaluateWeights(r);
    r.log.info(`validation: ${JSON.stringify(metrics)}`);
  }
  const wallSeconds = secondsSince(r.startedAt);
  if (!r.packageDir) return { metrics, packageDir: null, wallSeconds };
  const packageDir = resolve(r.packageDir);
  await exportModelPackage(packageDir, {
    config: r.config, specs: r.specs, weights: r.weights, tokenizerJson: r.tokenizerBytes,
    manifest: {
      id: packageDir.split(/[\\/]/).pop()!, version: r.version, parent: r.parent, method: r.method, seed: r.seed,
      training: { ...r.training, wall_seconds: Math.round(wallSeconds) },
      dataset: { name: r.trainPaths.map((p) => p.split(/[\\/]/).slice(-2).join('/')).join('+'), sha256: r.trainSha256 },
      eval: metrics ? { validation: stripNulls(metrics) } : {},
    },
  });
  r.log.info(`package written: ${packageDir}`);
  return { metrics, packageDir, wallSeconds };
}
