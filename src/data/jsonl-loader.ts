// Reads VQA JSONL files (format: ../shared/data/README.md) into VqaCase lists, reporting every
// problem with its line number. The admin upload route reuses parseVqaJsonl to vet uploaded files,
// so nothing here trusts the input: sizes are bounded and image paths are confined to the upload.
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { caseFromRecord, type VqaCase } from './vqa-case.ts';
import { datasetSha256 } from './dataset-hash.ts';

export interface LineIssue {
  /** 1-based line number in the JSONL. */
  line: number;
  message: string;
}

export interface ParseResult {
  cases: VqaCase[];
  /** 1-based line of each case, parallel to `cases`. */
  caseLines: number[];
  /** Lines that produced no case because they are malformed, and why. */
  errors: LineIssue[];
  /**
   * Well-formed lines dropped because they carry no label (a blank answer): a defect of the data,
   * not of the file, so it does not fail the load. The official SLAKE train split has one.
   */
  skipped: LineIssue[];
  /** Lines kept but worth a look, e.g. an exact repeat of an earlier question on the same image. */
  warnings: LineIssue[];
}

export interface ParseOptions {
  /** Path of the JSONL (need not exist for parseVqaJsonl); image paths resolve against its folder. */
  jsonlPath: string;
  /** Defaults to datasetNameFor(jsonlPath). */
  dataset?: string;
  /** Longest accepted line, in UTF-8 bytes. The real sets stay under 400. */
  maxLineBytes?: number;
  /** Parsing stops after this many errors so a garbage upload cannot produce a huge report. */
  maxErrors?: number;
  /** When given, a case whose image this rejects becomes an error on its line. */
  imageExists?: (absolutePath: string) => boolean;
}

export const DEFAULT_MAX_LINE_BYTES = 8192;
export const DEFAULT_MAX_ERRORS = 1000;

const SPLIT_NAMES = new Set(['train', 'validation', 'val', 'valid', 'dev', 'test']);

/**
 * `slake/train.jsonl` -> 'slake'; `fixtures/vqa/vqa-rad.jsonl` -> 'vqa-rad': a file named after a
 * split takes its folder's name, any other file its own.
 */
export function datasetNameFor(jsonlPath: string): string {
  const stem = path.basename(jsonlPath).replace(/\.jsonl$/i, '');
  return SPLIT_NAMES.has(stem.toLowerCase()) ? path.basename(path.dirname(path.resolve(jsonlPath))) : stem;
}

/**
 * Parses JSONL given as text or raw bytes (bytes let invalid UTF-8 be reported on its own line).
 * Blank lines are skipped. Lines with any error contribute no case.
 */
export function parseVqaJsonl(input: string | Uint8Array, opts: ParseOptions): ParseResult {
  const maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const maxErrors = opts.maxErrors ?? DEFAULT_MAX_ERRORS;
  const baseDir = path.dirname(path.resolve(opts.jsonlPath));
  const dataset = opts.dataset ?? datasetNameFor(opts.jsonlPath);

  const cases: VqaCase[] = [];
  const caseLines: number[] = [];
  const errors: LineIssue[] = [];
  const skipped: LineIssue[] = [];
  const warnings: LineIssue[] = [];
  const lineOfId = new Map<string, number>();
  const firstAsked = new Map<string, { line: number; answer: string }>();

  for (const { line, text, tooLong, badUtf8 } of splitLines(input, maxLineBytes)) {
    if (errors.length >= maxErrors) {
      errors.push({ line, message: `stopped after ${maxErrors} errors` });
      break;
    }
    if (tooLong) {
      errors.push({ line, message: `line is longer than ${maxLineBytes} bytes` });
      continue;
    }
    if (badUtf8) {
      errors.push({ line, message: 'line is not valid UTF-8' });
      continue;
    }
    if (text.trim() === '') continue;

    let record: unknown;
    try {
      record = JSON.parse(text);
    } catch (e) {
      errors.push({ line, message: `invalid JSON: ${(e as Error).message}` });
      continue;
    }
    const built = caseFromRecord(record, { baseDir, dataset });
    if (!built.ok) {
      (built.unlabelled ? skipped : errors).push({ line, message: built.problems.join('; ') });
      continue;
    }
    const c = built.value;

    const idLine = lineOfId.get(c.id);
    if (idLine !== undefined) {
      errors.push({ line, message: `duplicate id "${c.id}" (first on line ${idLine})` });
      continue;
    }
    if (opts.imageExists && !opts.imageExists(c.imagePath)) {
      errors.push({ line, message: `image not found: ${path.relative(baseDir, c.imagePath)}` });
      continue;
    }

    // The official releases repeat a handful of (image, question) pairs verbatim with the same
    // answer; those are kept with a warning so row counts match the sources. The same pair with a
    // different answer is contradictory supervision, so it is an error.
    const pairKey = `${c.imagePath}\0${normaliseQuestion(c.question)}`;
    const earlier = firstAsked.get(pairKey);
    if (earlier) {
      if (normaliseAnswer(earlier.answer) !== normaliseAnswer(c.answer)) {
        errors.push({
          line,
          message: `same image and question as line ${earlier.line} but a different answer ("${c.answer}" vs "${earlier.answer}")`,
        });
        continue;
      }
      warnings.push({ line, message: `repeats the image, question and answer of line ${earlier.line}` });
    } else {
      firstAsked.set(pairKey, { line, answer: c.answer });
    }

    lineOfId.set(c.id, line);
    cases.push(c);
    caseLines.push(line);
  }
  return { cases, caseLines, errors, skipped, warnings };
}

export interface LoadOptions {
  dataset?: string;
  maxLineBytes?: number;
  maxErrors?: number;
  /** Check that every referenced image is a readable file (default true). */
  checkImages?: boolean;
}

export interface LoadedJsonl extends ParseResult {
  jsonlPath: string;
  dataset: string;
  /** The file's bytes, kept for provenance hashing. */
  bytes: Buffer;
}

export async function loadVqaJsonl(jsonlPath: string, opts: LoadOptions = {}): Promise<LoadedJsonl> {
  const absolute = path.resolve(jsonlPath);
  const bytes = await readFile(absolute);
  const dataset = opts.dataset ?? datasetNameFor(absolute);
  const parseOpts: ParseOptions = { jsonlPath: absolute, dataset };
  if (opts.maxLineBytes !== undefined) parseOpts.maxLineBytes = opts.maxLineBytes;
  if (opts.maxErrors !== undefined) parseOpts.maxErrors = opts.maxErrors;

  if (opts.checkImages ?? true) {
    // Collect the distinct image paths first so the existence check can be asynchronous.
    const probe = parseVqaJsonl(bytes, parseOpts);
    const present = new Set<string>();
    for (const p of new Set(probe.cases.map((c) => c.imagePath))) {
      const s = await stat(p).catch(() => null);
      if (s?.isFile()) present.add(p);
    }
    parseOpts.imageExists = (p) => present.has(p);
  }
  return { ...parseVqaJsonl(bytes, parseOpts), jsonlPath: absolute, dataset, bytes };
}

export interface FileIssue extends LineIssue {
  file: string;
}

export interface UnionResult {
  cases: VqaCase[];
  errors: FileIssue[];
  skipped: FileIssue[];
  warnings: FileIssue[];
  /** sha256 over the JSONL bytes and every referenced image (see dataset-hash.ts). */
  sha256: string;
}

/**
 * Loads several JSONL files (e.g. the train splits of VQA-RAD and SLAKE) as one training set, in
 * the order given. Ids must be unique across all files, since checkpoints and metrics refer to them.
 */
export async function loadVqaUnion(jsonlPaths: readonly string[], opts: LoadOptions = {}): Promise<UnionResult> {
  const loaded: LoadedJsonl[] = [];
  for (const p of jsonlPaths) loaded.push(await loadVqaJsonl(p, opts));

  const cases: VqaCase[] = [];
  const errors: FileIssue[] = [];
  const skipped: FileIssue[] = [];
  const warnings: FileIssue[] = [];
  const firstSeen = new Map<string, { file: string; line: number }>();
  for (const file of loaded) {
    errors.push(...file.errors.map((e) => ({ file: file.jsonlPath, ...e })));
    skipped.push(...file.skipped.map((e) => ({ file: file.jsonlPath, ...e })));
    warnings.push(...file.warnings.map((w) => ({ file: file.jsonlPath, ...w })));
    file.cases.forEach((c, i) => {
      const line = file.caseLines[i]!;
      const other = firstSeen.get(c.id);
      if (other !== undefined) {
        errors.push({ file: file.jsonlPath, line, message: `id "${c.id}" also appears in ${other.file} line ${other.line}` });
        return;
      }
      firstSeen.set(c.id, { file: file.jsonlPath, line });
      cases.push(c);
    });
  }
  const sha256 = await datasetSha256(
    loaded.map((f) => ({
      dataset: f.dataset,
      jsonlPath: f.jsonlPath,
      jsonlBytes: f.bytes,
      imagePaths: f.cases.map((c) => c.imagePath),
    })),
  );
  return { cases, errors, skipped, warnings, sha256 };
}

interface RawLine {
  line: number;
  text: string;
  tooLong: boolean;
  badUtf8: boolean;
}

function* splitLines(input: string | Uint8Array, maxLineBytes: number): Generator<RawLine> {
  if (typeof input === 'string') {
    const lines = input.split('\n');
    for (let i = 0; i < lines.length; i++) {
      let text = lines[i]!.replace(/\r$/, '');
      if (i === 0) text = text.replace(/^\uFEFF/, '');
      yield { line: i + 1, text, tooLong: Buffer.byteLength(text, 'utf8') > maxLineBytes, badUtf8: false };
    }
    return;
  }
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  let start = 0;
  for (let line = 1; start <= input.length; line++) {
    let end = input.indexOf(0x0a, start);
    if (end === -1) end = input.length;
    let stop = end;
    if (stop > start && input[stop - 1] === 0x0d) stop--;
    const slice = input.subarray(start, stop);
    if (slice.length > maxLineBytes) {
      yield { line, text: '', tooLong: true, badUtf8: false };
    } else {
      let text = '';
      let badUtf8 = false;
      try {
        // ignoreBOM: false drops a BOM at the start of each decoded line (in practice only line 1).
        text = decoder.decode(slice);
      } catch {
        badUtf8 = true;
      }
      yield { line, text, tooLong: false, badUtf8 };
    }
    start = end + 1;
  }
}

function normaliseQuestion(q: string): string {
  return q.trim().replace(/\s+/g, ' ').toLowerCase();
}

function normaliseAnswer(a: string): string {
  return a.trim().replace(/\s+/g, ' ').toLowerCase().replace(/[.]$/, '');
}
