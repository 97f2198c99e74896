// One visual-question-answering case, and the rules that turn one parsed JSONL record into one.
// The line-level concerns (JSON syntax, line numbers, duplicates) live in jsonl-loader.ts.
import path from 'node:path';
import { SPECIAL_TOKENS } from './special-tokens.ts';

export type AnswerType = 'closed' | 'open';

export interface VqaCase {
  id: string;
  /** Absolute path, resolved relative to the JSONL file that named it. */
  imagePath: string;
  question: string;
  answer: string;
  answerType: AnswerType;
  /** Choices for multiple-choice sets; absent for VQA-RAD and SLAKE. */
  options?: string[];
  /** 'vqa-rad', 'slake', or the name of the folder holding the JSONL. */
  dataset: string;
  /** Imaging modality as the source writes it (SLAKE: CT / MRI / X-Ray). VQA-RAD has none. */
  modality?: string;
  /** Body region as the source writes it (VQA-RAD: head/chest/abd; SLAKE: Lung, Brain_Tissue, …). */
  organ?: string;
  /** SLAKE: what the question asks about (Organ, Position, Abnormality, KG, …). */
  contentType?: string;
  /** VQA-RAD: PRES, POS, ABN, …; sometimes two joined by a comma. */
  questionType?: string;
  /** SLAKE: true where answering needs outside medical knowledge. */
  knowledge?: boolean;
  /** Every field of the record that is not one of the above (e.g. VQA-RAD's `phrasing`). */
  extra: Record<string, unknown>;
}

/** Record keys that map onto VqaCase fields; anything else goes to `extra`. */
const KNOWN_KEYS = new Set(['id', 'image', 'question', 'answer', 'answer_type', 'options', 'modality', 'organ', 'content_type', 'question_type', 'knowledge']);

export function isYesNoAnswer(answer: string): boolean {
  const a = normaliseWords(answer);
  return a === 'yes' || a === 'no';
}

/**
 * Used when a record carries no answer_type. Closed means the answer space is fixed by the question:
 * yes/no, an options list, or one of the alternatives the question itself names ("X or Y?").
 * On VQA-RAD and SLAKE this agrees with the given labels on 99% of rows; most disagreements are
 * label noise such as "Is this cancer or hemorrhage?" being marked open.
 */
export function inferAnswerType(question: string, answer: string, options?: readonly string[]): AnswerType {
  if (options && options.length > 0) return 'closed';
  if (isYesNoAnswer(answer)) return 'closed';
  const q = normaliseWords(question);
  const a = normaliseWords(answer);
  if (a !== '' && /\bor\b/.test(q) && ` ${q} `.includes(` ${a} `)) return 'closed';
  return 'open';
}

/** Lowercase, punctuation to spaces, single spaces: for comparing short answers and questions. */
function normaliseWords(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}]+/gu, ' ')
    .trim();
}

/**
 * Why an `image` reference is unsafe, or null when it is fine. Uploaded JSONL must not be able to
 * point the server at files outside the folder it was uploaded with, so only plain relative
 * paths below the JSONL's folder are accepted.
 */
export function imageRefProblem(image: string): string | null {
  if (image.length === 0) return 'image must not be empty';
  if (image.includes('\0')) return 'image must not contain NUL characters';
  if (image.includes('\\')) return 'image must use forward slashes';
  if (image.startsWith('/') || /^[A-Za-z]:/.test(image)) return 'image must be a relative path, not an absolute one';
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(image)) return 'image must be a relative path, not a URL';
  const segments = image.split('/');
  if (segments.includes('..')) return 'image must not contain ".." path segments';
  if (segments.some((s) => s === '')) return 'image must not contain empty path segments';
  return null;
}

export interface RecordContext {
  /** Absolute folder of the JSONL file; image paths are resolved against it. */
  baseDir: string;
  dataset: string;
}

export type RecordResult =
  | { ok: true; value: VqaCase }
  /**
   * `unlabelled`: the record is well formed but its answer is blank, so it can neither be trained
   * nor scored on. The official SLAKE train split has one such row; loaders skip these with a
   * notice instead of failing the whole file.
   */
  | { ok: false; problems: string[]; unlabelled?: true };

/** Checks one parsed JSONL record and builds the case; collects every problem rather than stopping at the first. */
export function caseFromRecord(record: unknown, ctx: RecordContext): RecordResult {
  if (typeof record !== 'object' || record === null || Array.isArray(record)) {
    return { ok: false, problems: ['line must be a JSON object'] };
  }
  const r = record as Record<string, unknown>;
  const problems: string[] = [];

  const requiredString = (key: string): string => {
    const v = r[key];
    if (v === undefined || v === null) problems.push(`missing required field "${key}"`);
    else if (typeof v !== 'string') problems.push(`"${key}" must be a string, got ${describeType(v)}`);
    else if (v.trim() === '') problems.push(`"${key}" must not be empty`);
    else return v;
    return '';
  };
  const optionalString = (key: string): string | undefined => {
    const v = r[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') {
      problems.push(`"${key}" must be a string, got ${describeType(v)}`);
      return undefined;
    }
    return v.trim() === '' ? undefined : v;
  };

  const id = requiredString('id');
  const image = requiredString('image');
  const question = requiredString('question');
  const answer = requiredString('answer');
  const blankAnswer = typeof r.answer === 'string' && r.answer.trim() === '';
  // A question or answer that spells a special token would be encoded as that control token
  // (e.g. an answer containing "</answer>" would end generation early in training targets).
  for (const [key, text] of [
    ['question', question],
    ['answer', answer],
  ] as const) {
    const token = SPECIAL_TOKENS.find((t) => text.includes(t));
    if (token) problems.push(`"${key}" must not contain the reserved token ${token}`);
  }

  let imagePath = '';
  if (image !== '') {
    const problem = imageRefProblem(image);
    if (problem) problems.push(problem);
    else {
      imagePath = path.resolve(ctx.baseDir, image);
      // Defence in depth: the syntactic checks above should already guarantee this.
      if (!isInside(ctx.baseDir, imagePath)) problems.push('image resolves outside the JSONL folder');
    }
  }

  let options: string[] | undefined;
  if (r.options !== undefined && r.options !== null) {
    if (!Array.isArray(r.options) || r.options.some((o) => typeof o !== 'string' || o.trim() === '')) {
      problems.push('"options" must be an array of non-empty strings');
    } else if (r.options.length < 2) {
      problems.push('"options" must list at least two choices');
    } else if ((r.options as string[]).some((o) => SPECIAL_TOKENS.some((t) => o.includes(t)))) {
      problems.push('"options" must not contain reserved tokens such as <answer>');
    } else {
      options = r.options as string[];
    }
  }

  let answerType: AnswerType | undefined;
  const givenType = r.answer_type;
  if (givenType !== undefined && givenType !== null) {
    if (givenType === 'closed' || givenType === 'open') answerType = givenType;
    else problems.push(`"answer_type" must be "closed" or "open", got ${JSON.stringify(givenType)}`);
  }

  let knowledge: boolean | undefined;
  if (r.knowledge !== undefined && r.knowledge !== null) {
    if (typeof r.knowledge === 'boolean') knowledge = r.knowledge;
    else problems.push(`"knowledge" must be a boolean, got ${describeType(r.knowledge)}`);
  }

  const modality = optionalString('modality');
  const organ = optionalString('organ');
  const contentType = optionalString('content_type');
  const questionType = optionalString('question_type');

  if (problems.length > 0) {
    return blankAnswer && problems.length === 1 ? { ok: false, problems, unlabelled: true } : { ok: false, problems };
  }

  const extra: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) if (!KNOWN_KEYS.has(k)) extra[k] = v;

  const value: VqaCase = {
    id,
    imagePath,
    question,
    answer,
    answerType: answerType ?? inferAnswerType(question, answer, options),
    dataset: ctx.dataset,
    extra,
  };
  if (options) value.options = options;
  if (modality !== undefined) value.modality = modality;
  if (organ !== undefined) value.organ = organ;
  if (contentType !== undefined) value.contentType = contentType;
  if (questionType !== undefined) value.questionType = questionType;
  if (knowledge !== undefined) value.knowledge = knowledge;
  return { ok: true, value };
}

function isInside(dir: string, file: string): boolean {
  const rel = path.relative(dir, file);
  return rel !== '' && rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel);
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}
