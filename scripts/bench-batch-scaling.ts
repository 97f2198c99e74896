// How much batching can gain at most: one shipped package, no server, one real radiograph and
// question; the median wall time of a whole greedy answer (vision, prefill, decode) at batch sizes
// 1..16, for each ORT intra-op thread count asked for. The serving benchmark's batch_speedup cannot
// beat what this prints for the batch sizes its clients reach.
//
//   node --import tsx scripts/bench-batch-scaling.ts [--model models/clinvqa-sft] [--threads 1,2]
//
// Last line: `batch_scaling threads=<n> b8=<×> b16=<×>` for the first thread count (per-answer
// time at batch 1 ÷ at batch 8 and 16).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { preprocessImage } from '../src/preprocess/image.ts';
import { loadRuntime } from '../src/runtime/model-runtime.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: path.join(repo, 'models/clinvqa-sft') },
    threads: { type: 'string', default: '1,2' },
    image: { type: 'string', default: path.join(repo, 'test/fixtures/vqa/images/synpic19853.jpg') },
    runs: { type: 'string', default: '15' },
  },
});
const BATCHES = [1, 2, 4, 8, 16];
const runs = Number(args.runs);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const summary: string[] = [];
for (const threads of args.threads!.split(',').map(Number)) {
  const rt = await loadRuntime(args.model!, { executionProviders: ['cpu'], intraOpThreads: threads });
  const ic = rt.imageConfig;
  const image = await preprocessImage(readFileSync(args.image!), {
    imageSize: ic.imageSize,
    patchSize: ic.patchSize,
    channels: 3,
    mean: ic.mean,
    std: ic.std,
    maxInputPixels: 1e8,
    maxBytes: 1e8,
  });
  const request = { patches: image.patches, question: 'Is there evidence of pneumothorax?', params: { temperature: 0, topP: 1, maxTokens: 64 } };
  const perAnswer = new Map<number, number>();
  for (const b of BATCHES) {
    const batch = Array.from({ length: b }, () => request);
    for (let i = 0; i < 3; i++) await rt.generateBatch(batch); // warm-up
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t = performance.now();
      await rt.generateBatch(batch);
      times.push(performance.now() - t);
    }
    perAnswer.set(b, median(times) / b);
    console.log(
      `threads=${threads} batch=${String(b).padStart(2)}  ${median(times).toFixed(1).padStart(6)} ms per batch  ${(median(times) / b).toFixed(2).padStart(6)} ms per answer  ${(perAnswer.get(1)! / perAnswer.get(b)!).toFixed(2)}×`,
    );
  }
  await rt.dispose();
  summary.push(
    `batch_scaling threads=${threads} b8=${(perAnswer.get(1)! / perAnswer.get(8)!).toFixed(2)} b16=${(perAnswer.get(1)! / perAnswer.get(16)!).toFixed(2)}`,
  );
}
console.log(summary[0]);
