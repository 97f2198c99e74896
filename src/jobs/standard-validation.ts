// The standard validation sample a fine-tune is scored on before and after, or the reason there is
// none. A job whose standard validation set cannot be found still trains (its held-out part of the
// upload is scored either way), but says so: a warning event, and `validation: "unavailable"` in
// its metrics, rather than a quiet "0 standard validation cases".
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { loadVqaUnion } from '../data/jsonl-loader.ts';
import type { VqaCase } from '../data/vqa-case.ts';
import { spreadSample } from '../training/run-output.ts';

/** What a job's metrics say in place of the standard validation scores when there are none. */
export const VALIDATION_UNAVAILABLE = 'unavailable';

export interface StandardValidation {
  /** `evalSamples` cases spread over the files found (0 = all of them). */
  cases: VqaCase[];
  /** Set when some or all of the configured files are missing or hold no usable case. */
  warning?: string;
  /** True when no case could be found at all: the metrics then say `validation: "unavailable"`. */
  unavailable: boolean;
}

/** A configured file as the job's events may show it: the last two path segments (e.g. `slake/validation.jsonl`). */
function shortName(file: string): string {
  return file.split(path.sep).slice(-2).join('/');
}

async function isFile(file: string): Promise<boolean> {
  return (await stat(file).catch(() => null))?.isFile() === true;
}

export async function loadStandardValidation(files: readonly string[], evalSamples: number): Promise<StandardValidation> {
  if (files.length === 0) {
    return { cases: [], unavailable: true, warning: 'no standard validation set is configured on this server; only the held-out part of the upload is scored' };
  }
  const found: string[] = [];
  const missing: string[] = [];
  for (const file of files) ((await isFile(file)) ? found : missing).push(file);
  const union = found.length > 0 ? await loadVqaUnion(found) : undefined;
  const cases = spreadSample(union?.cases ?? [], evalSamples);
  if (cases.length === 0) {
    const why = missing.length > 0 ? `not found: ${missing.map(shortName).join(', ')}` : `no usable case in ${found.map(shortName).join(', ')}`;
    return { cases, unavailable: true, warning: `the standard validation set is unavailable (${why}); only the held-out part of the upload is scored` };
  }
  if (missing.length > 0) {
    return {
      cases,
      unavailable: false,
      warning: `part of the standard validation set was not found (${missing.map(shortName).join(', ')}); scoring ${cases.length} cases from ${found.map(shortName).join(', ')}`,
    };
  }
  return { cases, unavailable: false };
}
