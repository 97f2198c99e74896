// Two model packages on the same questions, compared case by case: per dataset and over all, each
// model's greedy accuracy, the cases only one of them gets right, the difference with its 95%
// interval and an exact McNemar test. Paired, because "is B better than A?" is decided by the
// questions they disagree on; the two accuracies' separate intervals overlap far more than the
// difference's does.
//
//   npm run compare -- --a clinvqa-sft --b clinvqa-grpo \
//     --data ../shared/data/vqa-rad/validation.jsonl --data ../shared/data/slake/validation.jsonl [--json]
//
// Works on any JSONL of the ../shared/data format (e.g. a train split, to see how well a model fits
// what it was trained on). With --json the last line is one JSON object keyed by dataset and 'all'.
import { parseArgs } from 'node:util';
import { loadVqaJsonl } from '../src/data/jsonl-loader.ts';
import type { VqaCase } from '../src/data/vqa-case.ts';
import { evaluateCases } from '../src/eval/evaluate.ts';
import { scorePrediction } from '../src/eval/metrics.ts';
import { pairedComparison } from '../src/eval/proportion-stats.ts';
import { packageDirFor } from '../src/registry/model-package.ts';
import { loadRuntime } from '../src/runtime/model-runtime.ts';
import { buildPatchCache } from '../src/training/image-cache.ts';

const { values } = parseArgs({
  options: { a: { type: 'string' }, b: { type: 'string' }, data: { type: 'string', multiple: true }, json: { type: 'boolean', default: false } },
});
if (!values.a || !values.b || !values.data?.length) {
  console.error('usage: npm run compare -- --a <model dir or id> --b <model dir or id> --data <jsonl> [--data <jsonl> …] [--json]');
  process.exit(2);
}
const cases: VqaCase[] = [];
for (const file of values.data) {
  const loaded = await loadVqaJsonl(file);
  if (loaded.errors.length) console.error(`${file}: ${loaded.errors.length} records skipped as invalid`);
  cases.push(...loaded.cases);
}

/** Whether each case is answered correctly (greedy), in `cases` order. */
async function correctness(model: string): Promise<{ id: string; correct: boolean[] }> {
  const rt = await loadRuntime(packageDirFor(model), { executionProviders: ['cpu'] });
  try {
    const patches = await buildPatchCache(
      cases.map((c) => c.imagePath),
      rt.config,
    );
    const r = await evaluateCases(rt, cases, patches, { latencySamples: 0, onProgress: (d, n) => process.stderr.write(`\r${rt.id} ${d}/${n}`) });
    process.stderr.write('\n');
    return { id: rt.id, correct: r.predictions.map((p) => scorePrediction(p.completion, p.case).correct) };
  } finally {
    await rt.dispose();
  }
}

const a = await correctness(values.a);
const b = await correctness(values.b);
const groups = new Map<string, number[]>([['all', cases.map((_, i) => i)]]);
cases.forEach((c, i) => {
  const key = c.dataset ?? 'unknown';
  if (!groups.has(key)) groups.set(key, []);
  groups.get(key)!.push(i);
});

const pct = (x: number) => `${(100 * x).toFixed(1)}`;
const summary: Record<string, unknown> = {};
console.log(`A = ${a.id}, B = ${b.id}`);
for (const [name, idx] of groups) {
  const ca = idx.map((i) => a.correct[i]);
  const cb = idx.map((i) => b.correct[i]);
  const r = pairedComparison(ca, cb);
  const accA = ca.filter(Boolean).length / r.n;
  const accB = cb.filter(Boolean).length / r.n;
  console.log(
    `${name.padEnd(8)} n=${r.n}  A ${pct(accA)}%  B ${pct(accB)}%  only A ${r.onlyA}  only B ${r.onlyB}  ` +
      `B−A ${r.difference >= 0 ? '+' : ''}${pct(r.difference)} pts [95% ${pct(r.interval.lower)}, ${pct(r.interval.upper)}]  McNemar p=${r.pValue.toFixed(3)}`,
  );
  summary[name] = {
    n: r.n,
    accuracy_a: accA,
    accuracy_b: accB,
    only_a: r.onlyA,
    only_b: r.onlyB,
    difference: r.difference,
    interval: r.interval,
    p_value: r.pValue,
  };
}
if (values.json) console.log(JSON.stringify(summary));
