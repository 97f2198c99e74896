// What an experiment run produces: per row, the metrics, cost and curves; and the run's provenance.
import type { ExperimentConfig, ExperimentRow } from './experiment-config.ts';
import type { StepPoint } from './run-curves.ts';

export type Metrics = Record<string, Record<string, number | null>>;

export interface RowResult {
  row: ExperimentRow;
  /** The run directory that answers for this row (shared by rows with the same config). */
  runDir: string;
  /** null when the row has not finished (a report of a partial run). */
  metrics: Metrics | null;
  steps: number;
  /** Sum of the logged step times: training cost, whatever restarts happened. */
  trainSeconds: number;
  /** Wall time of the process that finished the row (setup, training, evaluation). */
  wallSeconds: number | null;
  /** Step the finishing process resumed from (0 = ran in one go). */
  resumedFromStep: number;
  /** True when this invocation found the row already finished and reused it. */
  reused: boolean;
  /** When the row's result was produced (by this or an earlier invocation). */
  finishedAt: string | null;
  curves: StepPoint[];
}

export interface ExperimentResult {
  config: ExperimentConfig;
  configPath: string;
  command: string;
  startedAt: string;
  finishedAt: string;
  machine: { cpu: string; cores: number; memoryGiB: number; node: string; platform: string; loadAverageAtStart: number };
  sft: { dir: string; id: string; manifestSha256: string | null };
  data: { train: string[]; trainCases: number; trainSha256: string; validation: string[]; evalCases: number; evalPerDataset: Record<string, number> };
  rows: RowResult[];
  /** Every row has metrics. */
  complete: boolean;
}
