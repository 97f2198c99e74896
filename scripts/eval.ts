// npm run eval -- --model <model dir or id> --data <jsonl> [--json] [--limit N]
// Works on any JSONL of the ../shared/data format (images resolved relative to the file); greedy
// decoding; prints accuracy overall / closed / open / per modality and per dataset, format rate,
// trace grounding rate, yes-bias, mean completion length and latency. With --json the last line is
// one JSON object (accuracy, closed_accuracy, open_accuracy, format_rate, grounding_rate, yes_bias, n, …).
import { parseArgs } from 'node:util';
import { loadToolConfig } from '../src/config.ts';
import { loadVqaJsonl } from '../src/data/jsonl-loader.ts';
import { packageDirFor } from '../src/registry/model-package.ts';
import { loadRuntime } from '../src/runtime/model-runtime.ts';
import { buildPatchCache } from '../src/training/image-cache.ts';
import { evaluateCases, summarize } from '../src/eval/evaluate.ts';

const { values } = parseArgs({
  options: { model: { type: 'string' }, data: { type: 'string' }, json: { type: 'boolean', default: false }, limit: { type: 'string' } },
});
if (!values.model || !values.data) {
  console.error('usage: npm run eval -- --model <model dir or id> --data <jsonl> [--json] [--limit N]');
  process.exit(2);
}
const modelDir = packageDirFor(values.model);
const loaded = await loadVqaJsonl(values.data);
for (const e of loaded.errors.slice(0, 5)) console.error(`${values.data}:${e.line}: ${e.message}`);
if (loaded.errors.length) console.error(`${loaded.errors.length} records skipped as invalid`);
const cases = values.limit ? loaded.cases.slice(0, Number(values.limit)) : loaded.cases;
const rt = await loadRuntime(modelDir, { executionProviders: [...loadToolConfig().executionProviders] });
const patches = await buildPatchCache(
  cases.map((c) => c.imagePath),
  rt.config,
);
const r = await evaluateCases(rt, cases, patches, { onProgress: (d, n) => process.stderr.write(`\r${d}/${n}`) });
process.stderr.write('\n');
await rt.dispose();

const m = r.metrics;
const pct = (x: number | null) => (x === null ? '—' : `${(100 * x).toFixed(1)}%`);
console.log(`model ${rt.id} (${rt.config.preset}) on ${values.data}: n=${m.n}`);
console.log(
  `accuracy ${pct(m.accuracy)} [95% CI ${pct(m.accuracyInterval.lower)}–${pct(m.accuracyInterval.upper)}]  closed ${pct(m.closed.accuracy)} (n=${m.closed.n})  open ${pct(m.open.accuracy)} (n=${m.open.n})`,
);
for (const [k, g] of Object.entries(m.perModality)) console.log(`  modality ${k}: ${pct(g.accuracy)} (n=${g.n})`);
for (const [k, g] of Object.entries(m.perDataset)) console.log(`  dataset ${k}: ${pct(g.accuracy)} (n=${g.n})`);
console.log(
  `format ${pct(m.formatRate)}  grounding ${pct(m.traceGrounding.rate)} (n=${m.traceGrounding.n})  yes-bias ${m.yesBias.bias === null ? '—' : `${(100 * m.yesBias.bias).toFixed(1)} pts`}  mean completion ${m.meanCompletionLength.value?.toFixed(1)} ${m.meanCompletionLength.unit}`,
);
console.log(`latency: ${r.singleLatencyMsP50?.toFixed(0)} ms p50 per single answer, ${r.batchedMsPerCase.toFixed(0)} ms per case batched`);
if (values.json) console.log(JSON.stringify(summarize(r)));
