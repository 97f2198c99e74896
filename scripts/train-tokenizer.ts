// Trains the shared byte-level BPE tokenizer on the training splits and writes tokenizer.json.
//   node --import tsx scripts/train-tokenizer.ts [--data a.jsonl --data b.jsonl] [--vocab-size 2048]
//        [--min-frequency 2] [--out assets/tokenizer.json]
// Only train splits belong in --data: validation text must not shape the vocabulary we tune on.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadVqaUnion } from '../src/data/jsonl-loader.ts';
import { buildGroundedTrace, formatCompletion } from '../src/data/grounded-trace.ts';
import { tokenizerCorpus } from '../src/data/tokenizer-corpus.ts';
import { saveTokenizerJson, trainByteLevelBpe } from '../src/data/tokenizer-train.ts';
import { VqaTokenizer } from '../src/data/tokenizer.ts';
import type { VqaCase } from '../src/data/vqa-case.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_DATA = ['../shared/data/vqa-rad/train.jsonl', '../shared/data/slake/train.jsonl'];

const { values } = parseArgs({
  options: {
    data: { type: 'string', multiple: true },
    'vocab-size': { type: 'string', default: '2048' },
    'min-frequency': { type: 'string', default: '2' },
    out: { type: 'string', default: 'assets/tokenizer.json' },
  },
  strict: true,
});

const dataPaths = (values.data ?? DEFAULT_DATA).map((p) => path.resolve(repoRoot, p));
const vocabSize = positiveInt('--vocab-size', values['vocab-size']);
const minFrequency = positiveInt('--min-frequency', values['min-frequency']);
const outPath = path.resolve(repoRoot, values.out);

const data = await loadVqaUnion(dataPaths);
if (data.errors.length > 0) {
  for (const e of data.errors.slice(0, 20)) console.error(`${path.relative(repoRoot, e.file)}:${e.line}: ${e.message}`);
  console.error(`${data.errors.length} error(s) in the data; no tokenizer written`);
  process.exit(1);
}
for (const s of data.skipped) console.warn(`skipped ${path.relative(repoRoot, s.file)}:${s.line}: ${s.message}`);

const corpus = tokenizerCorpus(data.cases);
const started = performance.now();
const json = trainByteLevelBpe(corpus, { vocabSize, minFrequency });
const trainMs = performance.now() - started;
await saveTokenizerJson(json, outPath);

// Read it back through the run-time loader: what we report is what serving and training will see.
const tokenizer = await VqaTokenizer.load(outPath);
for (const [name, cases] of groupByDataset(data.cases)) report(name, cases, tokenizer);
report('all', data.cases, tokenizer);
console.log(
  `tokenizer vocab=${tokenizer.vocabSize} merges=${json.model.merges.length} corpus_strings=${corpus.length} ` +
    `cases=${data.cases.length} train_ms=${trainMs.toFixed(0)} data_sha256=${data.sha256} out=${path.relative(repoRoot, outPath)}`,
);

function report(name: string, cases: readonly VqaCase[], tk: VqaTokenizer): void {
  let qTokens = 0;
  let qBytes = 0;
  let cTokens = 0;
  for (const c of cases) {
    qTokens += tk.encode(c.question).length;
    qBytes += Buffer.byteLength(c.question);
    // +1 for the <eos> the trainers append after </answer>.
    cTokens += tk.encode(formatCompletion(buildGroundedTrace(c), c.answer)).length + 1;
  }
  const n = Math.max(1, cases.length);
  console.log(
    `${name}: n=${cases.length} question_tokens_mean=${(qTokens / n).toFixed(2)} ` +
      `question_bytes_per_token=${(qBytes / Math.max(1, qTokens)).toFixed(2)} grounded_completion_tokens_mean=${(cTokens / n).toFixed(2)}`,
  );
}

function groupByDataset(cases: readonly VqaCase[]): Map<string, VqaCase[]> {
  const groups = new Map<string, VqaCase[]>();
  for (const c of cases) {
    const list = groups.get(c.dataset) ?? [];
    list.push(c);
    groups.set(c.dataset, list);
  }
  return groups;
}

function positiveInt(flag: string, raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${flag} must be a positive integer, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return n;
}
