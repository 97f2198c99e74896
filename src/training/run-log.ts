// What a training run tells the world: one JSON line per step (and per event) in <out>/log.jsonl
// for charts and reports, and a short progress line on the terminal. Never patient text.
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

export type StepRecord = { step: number; total: number } & Record<string, number | string | null>;

export class RunLog {
  private readonly file: string | null;
  private lastPrint = 0;

  constructor(
    outDir: string | null,
    private readonly quiet = false,
    private readonly onStep?: (r: StepRecord) => void,
  ) {
    this.file = outDir ? join(outDir, 'log.jsonl') : null;
    if (outDir) mkdirSync(outDir, { recursive: true });
  }

  private write(record: Record<string, unknown>): void {
    if (this.file) appendFileSync(this.file, `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  }

  step(r: StepRecord): void {
    this.write({ kind: 'step', ...r });
    this.onStep?.(r);
    const now = Date.now();
    if (!this.quiet && (now - this.lastPrint > 2000 || r.step === r.total)) {
      this.lastPrint = now;
      const fields = Object.entries(r)
        .filter(([k]) => k !== 'step' && k !== 'total')
        .map(([k, v]) => `${k} ${typeof v === 'number' ? (Number.isInteger(v) ? v : v.toPrecision(4)) : v}`);
      process.stderr.write(`step ${r.step}/${r.total}  ${fields.join('  ')}\n`);
    }
  }

  info(message: string): void {
    this.write({ kind: 'info', message });
    if (!this.quiet) process.stderr.write(`${message}\n`);
  }

  progress(message: string): void {
    const now = Date.now();
    if (!this.quiet && now - this.lastPrint > 5000) {
      this.lastPrint = now;
      process.stderr.write(`${message}\n`);
    }
  }
}
