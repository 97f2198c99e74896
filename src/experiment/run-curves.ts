// Per-step curves of one GRPO run, read back from the <out>/log.jsonl its trainer wrote. A resumed
// run logs again the steps after its last checkpoint, so the last record of each step wins: it is
// the one whose weights the run went on from.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface StepPoint {
  step: number;
  /** Mean combined (weighted) reward of the step's completions. */
  reward: number;
  /** Mean of the accuracy reward alone: the one curve comparable across rows with different rewards. */
  accuracyReward: number | null;
  completionLength: number;
  /** Mean k3 KL to the reference (initial) policy: how far the run has moved. */
  kl: number | null;
  stepMs: number;
}

export function parseRunLog(text: string): StepPoint[] {
  const byStep = new Map<number, StepPoint>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a line cut short by a killed process
    }
    if (r.kind !== 'step' || typeof r.step !== 'number' || typeof r.reward !== 'number') continue;
    const acc = r['rewards/accuracy/mean'];
    byStep.set(r.step, {
      step: r.step,
      reward: r.reward,
      accuracyReward: typeof acc === 'number' ? acc : null,
      completionLength: typeof r.completion_length === 'number' ? r.completion_length : NaN,
      kl: typeof r.kl === 'number' ? r.kl : null,
      stepMs: typeof r.step_ms === 'number' ? r.step_ms : 0,
    });
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

export async function readRunCurves(runDir: string): Promise<StepPoint[]> {
  const text = await readFile(join(runDir, 'log.jsonl'), 'utf8').catch(() => '');
  return parseRunLog(text);
}
