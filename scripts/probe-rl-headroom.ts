// What re-weighting the policy's own samples could gain at most, per validation set: greedy
// accuracy, the accuracy of the most frequent of K sampled answers, pass@K (a correct answer among
// K samples: the questions where GRPO's group can see any reward), the expected accuracy of one
// sample (what GRPO's accuracy reward optimises), and on yes/no questions the accuracy of the best
// single threshold on the sampled P(yes), chosen on the same questions (an optimistic bound on
// what fixing a global yes/no bias can give).
//
//   node --import tsx scripts/probe-rl-headroom.ts [--model models/clinvqa-sft] [--samples 16]
//        [--data ../shared/data/vqa-rad/validation.jsonl,../shared/data/slake/validation.jsonl]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadVqaJsonl } from '../src/data/jsonl-loader.ts';
import { normalizeAnswer, scoreAnswer } from '../src/eval/answer-match.ts';
import { preprocessImage } from '../src/preprocess/image.ts';
import { loadRuntime } from '../src/runtime/model-runtime.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/clinvqa-sft' },
    samples: { type: 'string', default: '16' },
    data: { type: 'string', default: '../shared/data/vqa-rad/validation.jsonl,../shared/data/slake/validation.jsonl' },
  },
});
const K = Number(args.samples);
if (!Number.isInteger(K) || K < 1 || K > 16) throw new Error('--samples must be an integer in 1..16 (one batch)');
const MAX_TOKENS = 48;

const rt = await loadRuntime(args.model!, { executionProviders: ['cpu'] });
const ic = rt.imageConfig;
const pct = (x: number, n: number) => `${((100 * x) / Math.max(1, n)).toFixed(1)}%`;

for (const file of args.data!.split(',')) {
  const { cases, dataset } = await loadVqaJsonl(file);
  let greedyRight = 0,
    modeRight = 0,
    passK = 0,
    expected = 0;
  const yesNo: { pYes: number; goldYes: boolean; greedyRight: boolean }[] = [];
  for (const [i, c] of cases.entries()) {
    const image = await preprocessImage(readFileSync(c.imagePath), {
      imageSize: ic.imageSize,
      patchSize: ic.patchSize,
      channels: 3,
      mean: ic.mean,
      std: ic.std,
      maxInputPixels: 1e8,
      maxBytes: 1e8,
    });
    const ask = (temperature: number, seed?: number) => ({
      patches: image.patches,
      question: c.question,
      params: { temperature, topP: 1, maxTokens: MAX_TOKENS, seed },
    });
    const [greedy] = await rt.generateBatch([ask(0)]);
    const samples = await rt.generateBatch(Array.from({ length: K }, (_, k) => ask(1, i * K + k)));
    const right = (answer: string) => scoreAnswer(answer, c).correct;

    const counts = new Map<string, { n: number; answer: string }>();
    let rightSamples = 0;
    for (const s of samples) {
      const key = normalizeAnswer(s.answer);
      const entry = counts.get(key) ?? { n: 0, answer: s.answer };
      entry.n += 1;
      counts.set(key, entry);
      if (right(s.answer)) rightSamples += 1;
    }
    const mode = [...counts.values()].sort((a, b) => b.n - a.n)[0]!;
    const g = right(greedy!.answer);
    if (g) greedyRight += 1;
    if (right(mode.answer)) modeRight += 1;
    if (rightSamples > 0) passK += 1;
    expected += rightSamples / K;
    const gold = normalizeAnswer(c.answer);
    if (gold === 'yes' || gold === 'no') yesNo.push({ pYes: (counts.get('yes')?.n ?? 0) / K, goldYes: gold === 'yes', greedyRight: g });
  }
  const thresholds = [...new Set(yesNo.map((x) => x.pYes)), Infinity];
  const bestThreshold = Math.max(...thresholds.map((t) => yesNo.filter((x) => x.pYes >= t === x.goldYes).length));
  const n = cases.length;
  console.log(
    `${dataset}: n ${n}  greedy ${pct(greedyRight, n)}  mode of ${K} ${pct(modeRight, n)}  pass@${K} ${pct(passK, n)}  E[sample] ${pct(expected, n)}  ` +
      `yes/no (${yesNo.length}): greedy ${pct(yesNo.filter((x) => x.greedyRight).length, yesNo.length)}, best threshold on sampled P(yes) ${pct(bestThreshold, yesNo.length)}`,
  );
}
await rt.dispose();
