// Checks an upload before it may be trained on, in two steps:
//   1. the request (synchronous, in the route): which parts came, file names, hyperparameters,
//      fractions → a malformed request is refused at once (RequestProblem → 422/413);
//   2. the content (in the background, job status `validating_files`): every JSONL line against the
//      schema (line-numbered), every image named is present and decodes as PNG/JPEG/DICOM within the
//      pixel limit, no path traversal, no duplicate ids or contradictory labels, count limits →
//      an invalid upload ends its job `failed` with every reason.
import path from 'node:path';
import { parseVqaJsonl, type LineIssue } from '../data/jsonl-loader.ts';
import { decodeImage } from '../preprocess/image.ts';
import { ImageInputError } from '../preprocess/errors.ts';
import { ArchiveError, normaliseEntryPath, readTarArchive, type ArchiveEntry } from './archive.ts';
import { DATASET_JSONL, UPLOAD_DATASET_NAME, type StagedUpload } from './dataset-store.ts';
import { HyperparameterError, resolveHyperparameters, type FineTuneHyperparameters } from './hyperparameters.ts';

export interface UploadLimits {
  maxJsonlBytes: number;
  maxImageBytes: number;
  maxInputPixels: number;
  /** Image parts, or files in an archive. */
  maxFiles: number;
  maxArchiveBytes: number;
  /** Labelled cases in the JSONL. */
  maxCases: number;
  minCases: number;
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = {
  maxJsonlBytes: 16 * 1024 * 1024,
  maxImageBytes: 20 * 1024 * 1024,
  maxInputPixels: 50_000_000,
  maxFiles: 5000,
  maxArchiveBytes: 512 * 1024 * 1024,
  maxCases: 50_000,
  minCases: 4,
};

/** A malformed request: `status` 422 (or 413 for a size limit), with every problem listed. */
export class RequestProblem extends Error {
  override readonly name = 'RequestProblem';
  constructor(
    message: string,
    readonly problems: { path: string; message: string }[] = [],
    readonly status: 413 | 422 = 422,
  ) {
    super(message);
  }
}

export interface ReceivedPart {
  field: string;
  /** The client's file name (directories kept, so `images/a.jpg` can match the JSONL). */
  filename: string;
  data: Buffer;
}

export interface FineTuneRequest {
  baseModel: string;
  hyperparameters: FineTuneHyperparameters;
  validationFraction: number;
  canaryWeight: number | null;
  upload: StagedUpload;
}

const KNOWN_FIELDS = new Set(['base_model', 'hyperparameters', 'validation_fraction', 'canary_weight', 'suffix']);
const MODEL_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

/** Step 1: the request's fields and parts → what to stage, or a RequestProblem. */
export function parseFineTuneRequest(fields: Record<string, unknown>, parts: readonly ReceivedPart[], limits: UploadLimits): FineTuneRequest {
  const problems: { path: string; message: string }[] = [];
  for (const name of Object.keys(fields)) if (!KNOWN_FIELDS.has(name)) problems.push({ path: `/${name}`, message: 'unknown field' });
  const text = (name: string): string | undefined => {
    const v = fields[name];
    if (v === undefined) return undefined;
    if (typeof v !== 'string') {
      problems.push({ path: `/${name}`, message: 'must be sent once, as a text field' });
      return undefined;
    }
    return v.trim();
  };

  const baseModel = text('base_model');
  if (baseModel === undefined || baseModel === '') problems.push({ path: '/base_model', message: 'is required (a model id, e.g. clinvqa-grpo)' });
  else if (!MODEL_ID.test(baseModel)) problems.push({ path: '/base_model', message: 'is not a model id' });

  let hyperparameters: FineTuneHyperparameters | undefined;
  const rawHyper = text('hyperparameters');
  try {
    let parsed: unknown;
    if (rawHyper !== undefined && rawHyper !== '') {
      try {
        parsed = JSON.parse(rawHyper);
      } catch (error) {
        throw new HyperparameterError([{ path: '/hyperparameters', message: `is not valid JSON: ${(error as Error).message}` }]);
      }
    }
    hyperparameters = resolveHyperparameters(parsed);
  } catch (error) {
    if (!(error instanceof HyperparameterError)) throw error;
    problems.push(...error.problems);
  }

  const fraction = (name: string, fallback: number | null, min: number, max: number, minInclusive: boolean): number | null => {
    const raw = text(name);
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw);
    if (!Number.isFinite(value) || value > max || value < min || (!minInclusive && value === min)) {
      problems.push({ path: `/${name}`, message: `must be a number ${minInclusive ? 'from' : 'above'} ${min} ${max === 1 ? 'and below 1' : `to ${max}`}` });
      return fallback;
    }
    if (max === 1 && value === 1) {
      problems.push({ path: `/${name}`, message: 'must be below 1' });
      return fallback;
    }
    return value;
  };
  const validationFraction = fraction('validation_fraction', 0.2, 0, 0.9, true)!;
  const canaryWeight = fraction('canary_weight', null, 0, 1, false);

  const byField = (name: string) => parts.filter((p) => p.field === name);
  for (const p of parts) {
    if (!['training_file', 'images', 'archive'].includes(p.field))
      problems.push({ path: `/${p.field}`, message: 'unexpected file part (send training_file, images or archive)' });
  }
  const training = byField('training_file');
  const images = byField('images');
  const archives = byField('archive');
  if (training.length > 1) problems.push({ path: '/training_file', message: 'send one training file' });
  if (archives.length > 1) problems.push({ path: '/archive', message: 'send one archive' });
  if (archives.length > 0 && images.length > 0) problems.push({ path: '/archive', message: 'send either image parts or an archive, not both' });
  if (archives.length === 0 && training.length === 0) problems.push({ path: '/training_file', message: 'is required (JSONL), unless an archive holds it' });
  if (archives.length === 0 && images.length === 0 && training.length > 0)
    problems.push({ path: '/images', message: 'send the images the JSONL names (one part each) or an archive' });

  let upload: StagedUpload | undefined;
  if (problems.length === 0) {
    upload = archives.length > 0 ? fromArchive(archives[0]!, training[0], limits, problems) : fromParts(training[0]!, images, limits, problems);
  }
  if (problems.length > 0 || upload === undefined) {
    throw new RequestProblem(
      `The fine-tune request is malformed: ${problems
        .slice(0, 5)
        .map((p) => `${p.path} ${p.message}`)
        .join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}.`,
      problems,
    );
  }
  return { baseModel: baseModel!, hyperparameters: hyperparameters!, validationFraction, canaryWeight, upload };
}

function fromParts(
  training: ReceivedPart,
  images: readonly ReceivedPart[],
  limits: UploadLimits,
  problems: { path: string; message: string }[],
): StagedUpload | undefined {
  if (images.length > limits.maxFiles) throw new RequestProblem(`At most ${limits.maxFiles} images may be uploaded at once.`, [], 413);
  const files = new Map<string, Buffer>();
  images.forEach((part, i) => {
    const name = normaliseEntryPath(part.filename);
    if (name === null) problems.push({ path: `/images/${i}`, message: `file name "${printable(part.filename)}" is not a safe relative path` });
    else if (files.has(name)) problems.push({ path: `/images/${i}`, message: `file name "${printable(name)}" is sent twice` });
    else files.set(name, part.data);
  });
  return problems.length ? undefined : { jsonl: training.data, files };
}

function fromArchive(
  archive: ReceivedPart,
  training: ReceivedPart | undefined,
  limits: UploadLimits,
  problems: { path: string; message: string }[],
): StagedUpload | undefined {
  let entries: ArchiveEntry[];
  try {
    entries = readTarArchive(archive.data, { maxBytes: limits.maxArchiveBytes, maxEntries: limits.maxFiles + 1 });
  } catch (error) {
    if (!(error instanceof ArchiveError)) throw error;
    if (error.tooLarge) throw new RequestProblem(`The archive is too large: ${error.message}.`, [], 413);
    problems.push({ path: '/archive', message: error.message });
    return undefined;
  }
  let jsonl = training?.data;
  let root = '';
  if (jsonl === undefined) {
    const found = entries.filter((e) => e.path.toLowerCase().endsWith('.jsonl'));
    if (found.length !== 1) {
      problems.push({
        path: '/archive',
        message:
          found.length === 0
            ? 'holds no .jsonl file'
            : `holds ${found.length} .jsonl files (${found
                .slice(0, 3)
                .map((e) => e.path)
                .join(', ')}); put one in it, or send training_file`,
      });
      return undefined;
    }
    jsonl = found[0]!.data;
    root = path.posix.dirname(found[0]!.path);
    root = root === '.' ? '' : `${root}/`;
  }
  // Images resolve against the JSONL's folder inside the archive; files elsewhere are not part of the set.
  const files = new Map<string, Buffer>();
  for (const e of entries) {
    if (e.path.toLowerCase().endsWith('.jsonl') || !e.path.startsWith(root)) continue;
    files.set(e.path.slice(root.length), e.data);
  }
  if (jsonl.length > limits.maxJsonlBytes) throw new RequestProblem(`The JSONL is larger than ${limits.maxJsonlBytes} bytes.`, [], 413);
  return { jsonl, files };
}

// ---- step 2: the content --------------------------------------------------------------------------

export interface ContentProblem {
  line?: number;
  file?: string;
  message: string;
}

export type ContentResult =
  | { ok: true; jsonl: Buffer; images: Map<string, Buffer>; cases: number; warnings: ContentProblem[] }
  | { ok: false; errors: ContentProblem[]; warnings: ContentProblem[] };

// Where a dataset's JSONL notionally sits while it is checked: only relative paths are ever derived from it.
const VIRTUAL_ROOT = path.resolve('/upload');
const MAX_REPORTED = 200;

/**
 * Step 2. Matches each `image` of the JSONL to an uploaded file (same relative path, else the one
 * file with that base name), decodes every distinct image once, and returns the dataset to store:
 * the JSONL bytes unchanged and each image under the path the JSONL names.
 */
export async function validateUploadContent(upload: StagedUpload, limits: UploadLimits): Promise<ContentResult> {
  const errors: ContentProblem[] = [];
  const warnings: ContentProblem[] = [];
  if (upload.jsonl.length > limits.maxJsonlBytes)
    return { ok: false, errors: [{ message: `the JSONL is larger than ${limits.maxJsonlBytes} bytes` }], warnings };

  const byBase = new Map<string, string[]>();
  for (const rel of upload.files.keys()) {
    const base = path.posix.basename(rel);
    byBase.set(base, [...(byBase.get(base) ?? []), rel]);
  }
  const resolveFile = (rel: string): string | undefined => {
    if (upload.files.has(rel)) return rel;
    const candidates = byBase.get(path.posix.basename(rel)) ?? [];
    return candidates.length === 1 ? candidates[0] : undefined;
  };
  const toRel = (abs: string) => path.relative(VIRTUAL_ROOT, abs).split(path.sep).join('/');

  const parsed = parseVqaJsonl(upload.jsonl, {
    jsonlPath: path.join(VIRTUAL_ROOT, DATASET_JSONL),
    dataset: UPLOAD_DATASET_NAME,
    maxErrors: MAX_REPORTED,
    imageExists: (abs) => resolveFile(toRel(abs)) !== undefined,
  });
  errors.push(...parsed.errors.map(lineProblem));
  warnings.push(...parsed.skipped.map((s) => ({ line: s.line, message: `skipped (no label): ${s.message}` })), ...parsed.warnings.map(lineProblem));
  if (parsed.cases.length + parsed.errors.length > limits.maxCases) errors.push({ message: `the JSONL holds more than ${limits.maxCases} cases` });

  // Every distinct image once; a failure is reported on the first line naming it.
  const images = new Map<string, Buffer>();
  const firstLine = new Map<string, number>();
  parsed.cases.forEach((c, i) => {
    const rel = toRel(c.imagePath);
    if (!firstLine.has(rel)) firstLine.set(rel, parsed.caseLines[i]!);
  });
  for (const [rel, line] of firstLine) {
    if (errors.length >= MAX_REPORTED) break;
    const bytes = upload.files.get(resolveFile(rel)!)!;
    try {
      if (bytes.length > limits.maxImageBytes) throw new ImageInputError('image_too_large_bytes', `larger than ${limits.maxImageBytes} bytes`);
      await decodeImage(bytes, 16, { maxBytes: limits.maxImageBytes, maxInputPixels: limits.maxInputPixels });
      images.set(rel, bytes);
    } catch (error) {
      if (!(error instanceof ImageInputError)) throw error;
      errors.push({ line, message: `image "${printable(rel)}" cannot be used: ${error.message}` });
    }
  }
  const used = new Set([...firstLine.keys()].map(resolveFile));
  const unused = [...upload.files.keys()].filter((rel) => !used.has(rel));
  if (unused.length > 0)
    warnings.push({ message: `${unused.length} uploaded file(s) are not named by any line and are ignored (e.g. "${printable(unused[0]!)}")` });

  if (errors.length === 0 && parsed.cases.length < limits.minCases) {
    errors.push({
      message: `the upload holds ${parsed.cases.length} usable case(s); at least ${limits.minCases} are needed (some to train on, some to hold out)`,
    });
  }
  if (errors.length > 0) return { ok: false, errors: errors.slice(0, MAX_REPORTED), warnings: warnings.slice(0, MAX_REPORTED) };
  return { ok: true, jsonl: upload.jsonl, images, cases: parsed.cases.length, warnings: warnings.slice(0, MAX_REPORTED) };
}

function lineProblem(issue: LineIssue): ContentProblem {
  return { line: issue.line, message: issue.message };
}

function printable(name: string): string {
  return name.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
}
