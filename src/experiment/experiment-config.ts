// The experiment file (experiments/*.yaml): one shared GRPO config (the fixed budget), the SFT
// package every "from SFT" row starts from, the validation set, the rows (each an id, a label and
// overrides of the shared config, or the SFT baseline) and the factors that compare rows. Rows are
// resolved here into complete trainer configs, and rows whose configs are identical are planned as
// one run, so a shared row (e.g. "Dr. GRPO from SFT + semantic") trains once and is reused.
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { readConfigFile, withDefaults } from '../training/config-file.ts';
import { GRPO_DEFAULTS, REWARD_NAMES, validateGrpoConfig, type GrpoConfig, type RewardName } from '../training/grpo/grpo-config.ts';
import { SFT_DEFAULTS, type SftConfig } from '../training/sft/sft-config.ts';

export interface PaperReference {
  /** The paper's accuracy in percent (PMC-VQA, Qwen2-VL-2B) for the closest setting. */
  accuracy: number;
  /** Which of the paper's rows it is, e.g. "Dr. GRPO". */
  label: string;
}

export interface ExperimentRow {
  id: string;
  label: string;
  /** 'sft' = evaluate the SFT package as it is (no training); 'grpo' = a GRPO run. */
  kind: 'sft' | 'grpo';
  /** Overrides of `base` (GRPO rows only); `init: sft` names the experiment's SFT package. */
  overrides: Partial<GrpoConfig>;
  paper: PaperReference | null;
}

/** One finding of the paper, checked on overall validation accuracy: `better` should beat `worse`. */
export interface Claim {
  better: string;
  worse: string;
}

export interface Factor {
  id: string;
  title: string;
  rows: string[];
  /** What the paper reports for this factor, in words (shown in the report). */
  finding: string;
  claims: Claim[];
}

export interface ExperimentConfig {
  title: string;
  /** Each GRPO run trains in <out>/<row id>; the SFT baseline's result is cached in <out>/<row id> too. */
  out: string;
  /** Markdown report; the SVG charts are written next to it as <name>-reward.svg etc. */
  report: string;
  /** Model package every `init: sft` row starts from and the SFT baseline row evaluates. */
  sft_init: string;
  /** When set and `sft_init` holds no package yet, train it first with these SFT settings (smoke runs). */
  sft_train: Partial<SftConfig> | null;
  validation: string[];
  /** Validation cases scored per row, spread evenly over the splits (0 = all). */
  eval_samples: number;
  /** Weight of each reward function by name; a row's reward_weights follow its reward_funcs. */
  reward_weights: Partial<Record<RewardName, number>>;
  base: GrpoConfig;
  rows: ExperimentRow[];
  factors: Factor[];
}

/** A GRPO run to perform: the rows it answers for (identical configs) and its complete config. */
export interface PlannedRun {
  /** The first row with this config; the run directory is named after it. */
  id: string;
  rows: string[];
  config: GrpoConfig;
  /** sha256 of the config (out excluded), with the init package's identity mixed in by the runner. */
  configKey: string;
}

const ROOT_KEYS = ['extends', 'title', 'out', 'report', 'sft_init', 'sft_train', 'validation', 'eval_samples', 'reward_weights', 'base', 'rows', 'factors'];
const ID = /^[a-z0-9][a-z0-9-]*$/;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string' || !v.trim()) throw new Error(`${what} must be a non-empty string`);
  return v;
}

function strList(v: unknown, what: string): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new Error(`${what} must be a list of strings`);
  return v as string[];
}

/**
 * Reads an experiment file. `extends: <path>` (relative to the file) takes every key of another
 * experiment file and lets this one override it, `base` key by key, so a smoke run can reuse the
 * full run's rows and factors with a tiny budget.
 */
export async function readExperimentConfig(path: string): Promise<ExperimentConfig> {
  return parseExperimentConfig(await readMerged(path, new Set()), path);
}

async function readMerged(path: string, seen: Set<string>): Promise<Record<string, unknown>> {
  const full = resolve(path);
  if (seen.has(full)) throw new Error(`${path}: "extends" loops back to itself`);
  seen.add(full);
  const doc = await readConfigFile(path);
  if (doc.extends === undefined) return doc;
  // Paths inside experiment files are relative to the working directory (the repository root),
  // like the trainer configs; only `extends` is relative to the file that names it.
  const parent = await readMerged(join(dirname(full), str(doc.extends, `${path}: extends`)), seen);
  const { extends: _ignored, ...own } = doc;
  const base = { ...(isRecord(parent.base) ? parent.base : {}), ...(isRecord(own.base) ? own.base : {}) };
  return { ...parent, ...own, base };
}

export function parseExperimentConfig(doc: Record<string, unknown>, what: string): ExperimentConfig {
  for (const key of Object.keys(doc)) if (!ROOT_KEYS.includes(key)) throw new Error(`${what}: unknown key "${key}" (known: ${ROOT_KEYS.join(', ')})`);
  if (!isRecord(doc.base)) throw new Error(`${what}: "base" (the shared GRPO config) must be a mapping`);
  for (const key of ['out', 'package_dir', 'validation', 'eval_samples'] as const) {
    if (key in doc.base) throw new Error(`${what}: base.${key} is set by the experiment (use the top-level keys), remove it`);
  }
  const base = withDefaults(GRPO_DEFAULTS, doc.base, `${what}: base`);

  const weights: Partial<Record<RewardName, number>> = {};
  if (doc.reward_weights !== undefined) {
    if (!isRecord(doc.reward_weights)) throw new Error(`${what}: reward_weights must map reward names to numbers`);
    for (const [name, w] of Object.entries(doc.reward_weights)) {
      if (!REWARD_NAMES.includes(name as RewardName)) throw new Error(`${what}: reward_weights: unknown reward "${name}"`);
      if (typeof w !== 'number' || !Number.isFinite(w)) throw new Error(`${what}: reward_weights.${name} must be a number`);
      weights[name as RewardName] = w;
    }
  }

  let sftTrain: Partial<SftConfig> | null = null;
  if (doc.sft_train !== undefined && doc.sft_train !== null) {
    if (!isRecord(doc.sft_train)) throw new Error(`${what}: sft_train must be a mapping of SFT settings`);
    for (const key of ['out', 'package_dir'] as const)
      if (key in doc.sft_train) throw new Error(`${what}: sft_train.${key} is set by the experiment, remove it`);
    sftTrain = withDefaults(SFT_DEFAULTS, doc.sft_train, `${what}: sft_train`);
  }

  if (!Array.isArray(doc.rows) || doc.rows.length === 0) throw new Error(`${what}: rows must be a non-empty list`);
  const rows = doc.rows.map((r, i) => parseRow(r, `${what}: rows[${i}]`));
  const ids = new Set<string>();
  for (const r of rows) {
    if (ids.has(r.id)) throw new Error(`${what}: row id "${r.id}" appears twice`);
    ids.add(r.id);
  }

  const factors = (doc.factors === undefined ? [] : doc.factors) as unknown;
  if (!Array.isArray(factors)) throw new Error(`${what}: factors must be a list`);
  const parsedFactors = factors.map((f, i) => parseFactor(f, ids, `${what}: factors[${i}]`));

  const eval_samples = doc.eval_samples ?? 0;
  if (typeof eval_samples !== 'number' || !Number.isInteger(eval_samples) || eval_samples < 0) throw new Error(`${what}: eval_samples must be an integer >= 0`);
  const cfg: ExperimentConfig = {
    title: str(doc.title ?? 'GRPO experiment', `${what}: title`),
    out: str(doc.out, `${what}: out`),
    report: str(doc.report, `${what}: report`),
    sft_init: str(doc.sft_init, `${what}: sft_init`),
    sft_train: sftTrain,
    validation: strList(doc.validation, `${what}: validation`),
    eval_samples,
    reward_weights: weights,
    base,
    rows,
    factors: parsedFactors,
  };
  if (!cfg.report.endsWith('.md')) throw new Error(`${what}: report must be a .md path`);
  if (cfg.validation.length === 0) throw new Error(`${what}: validation is empty; every row is scored on it`);
  // Resolve every row now, so a bad override fails before the first minute of training.
  planRuns(cfg);
  return cfg;
}

function parseRow(r: unknown, what: string): ExperimentRow {
  if (!isRecord(r)) throw new Error(`${what} must be a mapping`);
  for (const key of Object.keys(r)) if (!['id', 'label', 'kind', 'overrides', 'paper'].includes(key)) throw new Error(`${what}: unknown key "${key}"`);
  const id = str(r.id, `${what}.id`);
  if (!ID.test(id)) throw new Error(`${what}.id "${id}" must be lower-case letters, digits and dashes (it names a run directory)`);
  const kind = r.kind ?? 'grpo';
  if (kind !== 'sft' && kind !== 'grpo') throw new Error(`${what}.kind must be sft or grpo`);
  const overrides = r.overrides ?? {};
  if (!isRecord(overrides)) throw new Error(`${what}.overrides must be a mapping`);
  if (kind === 'sft' && Object.keys(overrides).length) throw new Error(`${what}: the SFT baseline is evaluated as it is and takes no overrides`);
  for (const key of ['out', 'package_dir', 'validation', 'eval_samples'])
    if (key in overrides) throw new Error(`${what}.overrides.${key} is set by the experiment, remove it`);
  // Type-check the overrides against the trainer's defaults (unknown keys and wrong types fail).
  withDefaults(GRPO_DEFAULTS, overrides, `${what}.overrides`);
  let paper: PaperReference | null = null;
  if (r.paper !== undefined && r.paper !== null) {
    if (!isRecord(r.paper) || typeof r.paper.accuracy !== 'number') throw new Error(`${what}.paper must be {accuracy: <percent>, label: <text>}`);
    paper = { accuracy: r.paper.accuracy, label: str(r.paper.label, `${what}.paper.label`) };
  }
  return { id, label: str(r.label, `${what}.label`), kind, overrides: overrides as Partial<GrpoConfig>, paper };
}

function parseFactor(f: unknown, ids: Set<string>, what: string): Factor {
  if (!isRecord(f)) throw new Error(`${what} must be a mapping`);
  const rows = strList(f.rows, `${what}.rows`);
  for (const id of rows) if (!ids.has(id)) throw new Error(`${what}: unknown row "${id}"`);
  const claims = (f.claims ?? []) as unknown;
  if (!Array.isArray(claims)) throw new Error(`${what}.claims must be a list`);
  return {
    id: str(f.id, `${what}.id`),
    title: str(f.title, `${what}.title`),
    rows,
    finding: typeof f.finding === 'string' ? f.finding : '',
    claims: claims.map((c, i) => {
      if (!isRecord(c)) throw new Error(`${what}.claims[${i}] must be {better: <row>, worse: <row>}`);
      const better = str(c.better, `${what}.claims[${i}].better`);
      const worse = str(c.worse, `${what}.claims[${i}].worse`);
      for (const id of [better, worse]) if (!ids.has(id)) throw new Error(`${what}.claims[${i}]: unknown row "${id}"`);
      return { better, worse };
    }),
  };
}

/** The complete trainer config of a GRPO row (its `out` is filled in by planRuns). */
export function resolveRowConfig(cfg: ExperimentConfig, row: ExperimentRow): GrpoConfig {
  const c: GrpoConfig = { ...cfg.base, ...row.overrides, validation: cfg.validation, eval_samples: cfg.eval_samples, package_dir: '', out: '' };
  if (c.init === 'sft') c.init = cfg.sft_init;
  // Weights by name, unless the row spells out its own list.
  if (!('reward_weights' in row.overrides)) c.reward_weights = c.reward_funcs.map((name) => cfg.reward_weights[name] ?? 1);
  validateGrpoConfig(c);
  return c;
}

/** Deterministic JSON (sorted keys), so equal configs hash equally whatever their key order. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (isRecord(v))
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

export function configKey(c: GrpoConfig, extra = ''): string {
  const { out: _out, ...rest } = c;
  return createHash('sha256').update(stableJson(rest)).update(extra).digest('hex');
}

/** One run per distinct config, in row order; the run lives in <out>/<id of its first row>. */
export function planRuns(cfg: ExperimentConfig): PlannedRun[] {
  const runs: PlannedRun[] = [];
  for (const row of cfg.rows) {
    if (row.kind !== 'grpo') continue;
    const config = resolveRowConfig(cfg, row);
    const key = configKey(config);
    const same = runs.find((r) => r.configKey === key);
    if (same) {
      same.rows.push(row.id);
      continue;
    }
    runs.push({ id: row.id, rows: [row.id], config: { ...config, out: join(cfg.out, row.id) }, configKey: key });
  }
  return runs;
}

/** The paths of the report's charts, next to the report. */
export function chartPaths(reportPath: string): { reward: string; accuracy: string; length: string } {
  const stem = reportPath.replace(/\.md$/, '');
  return { reward: `${stem}-reward.svg`, accuracy: `${stem}-accuracy.svg`, length: `${stem}-length.svg` };
}
