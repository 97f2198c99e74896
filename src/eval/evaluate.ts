// Runs a loaded model over VQA cases with greedy decoding and scores it. Batched for throughput;
// the single-answer latency (what a clinician waits for) is measured separately at batch size 1.
import type { VqaCase } from '../data/vqa-case.ts';
import type { ModelRuntime } from '../runtime/types.ts';
import { computeEvalMetrics, evalJsonSummary, type EvalMetrics, type EvalPrediction } from './metrics.ts';

/** Each case's preprocessed image by its path (training/image-cache.ts builds one). */
export type CasePatches = ReadonlyMap<string, Float32Array>;

export interface EvaluateOptions {
  batchSize?: number;
  maxTokens?: number;
  /** How many cases to time one at a time (default 16; 0 = skip). */
  latencySamples?: number;
  onProgress?(done: number, total: number): void;
}

export interface EvaluationResult {
  predictions: (EvalPrediction & { id: string })[];
  metrics: EvalMetrics;
  /** Wall time per case when batched. */
  batchedMsPerCase: number;
  /** Median wall time of one answer at batch size 1 (image preprocessing excluded). */
  singleLatencyMsP50: number | null;
}

const GREEDY = { temperature: 0, topP: 1 };

export async function evaluateCases(rt: ModelRuntime, cases: readonly VqaCase[], patches: CasePatches, opts: EvaluateOptions = {}): Promise<EvaluationResult> {
  const batchSize = Math.min(opts.batchSize ?? 16, rt.maxBatch);
  const maxTokens = opts.maxTokens ?? 64;
  // A question longer than the model reads is read by its end, as the trainers' prompts are (the
  // shared splits have none; a fine-tune job warns about its own).
  const request = (c: VqaCase) => ({ patches: patches.get(c.imagePath)!, question: c.question, params: { ...GREEDY, maxTokens }, readQuestionEnd: true });
  const predictions: EvaluationResult['predictions'] = [];
  const t0 = performance.now();
  for (let i = 0; i < cases.length; i += batchSize) {
    const chunk = cases.slice(i, i + batchSize);
    const results = await rt.generateBatch(chunk.map(request));
    results.forEach((r, j) => {
      const c = chunk[j];
      predictions.push({
        id: c.id,
        completion: r.text,
        completionTokens: r.completionTokens,
        case: {
          question: c.question,
          answer: c.answer,
          answerType: c.answerType,
          options: c.options,
          modality: c.modality,
          organ: c.organ,
          dataset: c.dataset,
        },
      });
    });
    opts.onProgress?.(Math.min(i + batchSize, cases.length), cases.length);
  }
  const batchedMsPerCase = cases.length ? (performance.now() - t0) / cases.length : 0;
  const times: number[] = [];
  for (const c of cases.slice(0, opts.latencySamples ?? 16)) {
    const s = performance.now();
    await rt.generateBatch([request(c)]);
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  return {
    predictions,
    metrics: computeEvalMetrics(predictions),
    batchedMsPerCase,
    singleLatencyMsP50: times.length ? times[Math.floor(times.length / 2)] : null,
  };
}

/** The flat summary `npm run eval -- --json` prints and manifests record: the keys plus length and latency. */
export function summarize(r: EvaluationResult): Record<string, number | null> {
  return {
    ...evalJsonSummary(r.metrics),
    mean_completion_length: r.metrics.meanCompletionLength.value,
    latency_ms_p50: r.singleLatencyMsP50,
    batched_ms_per_case: r.batchedMsPerCase,
  };
}

/** Summaries for all cases together and for each dataset on its own (manifests and reports). */
export async function evaluateByDataset(
  rt: ModelRuntime,
  cases: readonly VqaCase[],
  patches: CasePatches,
  opts: EvaluateOptions = {},
): Promise<Record<string, Record<string, number | null>>> {
  const all = await evaluateCases(rt, cases, patches, opts);
  const out: Record<string, Record<string, number | null>> = { all: summarize(all) };
  for (const dataset of [...new Set(cases.map((c) => c.dataset))].sort()) {
    const ids = new Set(cases.filter((c) => c.dataset === dataset).map((c) => c.id));
    const preds = all.predictions.filter((p) => ids.has(p.id));
    out[dataset] = summarize({
      predictions: preds,
      metrics: computeEvalMetrics(preds),
      batchedMsPerCase: all.batchedMsPerCase,
      singleLatencyMsP50: all.singleLatencyMsP50,
    });
  }
  return out;
}
