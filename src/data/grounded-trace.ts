// The SFT "grounded trace". A model trained from scratch has no language prior to reason with, so
// SFT teaches a short, checkable trace built from the case's own metadata: what kind of image it
// is, which region it shows, and what the question asks about. It is never built from the answer,
// so it cannot teach the model to copy labels into its reasoning.
import type { VqaCase } from './vqa-case.ts';
import { ANSWER_CLOSE, ANSWER_OPEN, SPECIAL_TOKENS, THINK_CLOSE, THINK_OPEN } from './special-tokens.ts';
import { MODALITY_FAMILIES, REGION_FAMILIES, mentions, regionsCompatible, sourceModality, sourceRegion } from './imaging-vocabulary.ts';

/** The metadata a trace may use; deliberately excludes `answer`. */
export type TraceMetadata = Pick<VqaCase, 'modality' | 'organ' | 'contentType' | 'questionType'>;

/**
 * What each question category asks about. Keys are VQA-RAD question_type and SLAKE content_type
 * values, upper-cased; the two misspellings in VQA-RAD (ATRIB, PRSE) are mapped too.
 */
const FOCUS_PHRASES: Record<string, string> = {
  PRES: 'whether a finding is present',
  PRSE: 'whether a finding is present',
  POS: 'about the location of a structure or finding',
  POSITION: 'about the location of a structure or finding',
  ABN: 'about an abnormality',
  ABNORMALITY: 'about an abnormality',
  MODALITY: 'about the imaging modality or technique',
  PLANE: 'about the imaging plane',
  ORGAN: 'about the organs shown',
  SIZE: 'about the size of a structure',
  COUNT: 'how many structures are seen',
  QUANTITY: 'how many structures are seen',
  COLOR: 'about the color or intensity of a structure',
  ATTRIB: 'about an attribute of a finding',
  ATRIB: 'about an attribute of a finding',
  SHAPE: 'about the shape of a structure',
  KG: 'about medical knowledge of the organs shown',
  OTHER: 'about another aspect of the image',
};

/** e.g. "MRI of the brain; the question asks about the location of a structure or finding." */
export function buildGroundedTrace(meta: TraceMetadata): string {
  const modality = meta.modality ? (sourceModality(meta.modality)?.canonical ?? meta.modality.trim()) : undefined;
  const region = meta.organ ? sourceRegion(meta.organ).phrase : undefined;
  let lead: string;
  if (modality && region) lead = `${modality} of ${region}`;
  else if (modality) lead = `A ${modality} image`;
  // VQA-RAD records no modality; saying "an image" rather than guessing keeps the trace true.
  else if (region) lead = `An image of ${region}`;
  else lead = 'A medical image';
  return `${lead}; the question asks ${questionFocus(meta)}.`;
}

function questionFocus(meta: TraceMetadata): string {
  const category = meta.contentType ?? meta.questionType;
  if (!category) return 'about the image';
  const phrases: string[] = [];
  for (const key of category
    .toUpperCase()
    .split(/[\s,]+/)
    .filter(Boolean)) {
    const phrase = FOCUS_PHRASES[key];
    if (phrase && !phrases.includes(phrase)) phrases.push(phrase);
  }
  return phrases.length > 0 ? phrases.join(' and ') : 'about the image';
}

/** `<think>trace</think><answer>answer</answer>`; the trainer appends `<eos>` itself. */
export function formatCompletion(trace: string, answer: string): string {
  for (const [name, text] of [
    ['trace', trace],
    ['answer', answer],
  ] as const) {
    const token = SPECIAL_TOKENS.find((t) => text.includes(t));
    if (token) throw new Error(`${name} must not contain the special token ${token}`);
  }
  return `${THINK_OPEN}${trace.trim()}${THINK_CLOSE}${ANSWER_OPEN}${answer.trim()}${ANSWER_CLOSE}`;
}

export interface ParsedCompletion {
  reasoning: string;
  answer: string;
  /** Exactly one think block, then exactly one answer block, and nothing else but whitespace. */
  wellFormed: boolean;
}

const TAGS = [THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE];
const WELL_FORMED = /^\s*<think>([\s\S]*?)<\/think>\s*<answer>([\s\S]*?)<\/answer>\s*$/;
const TRAILING_END_TOKENS = /(?:\s*(?:<eos>|<pad>))+\s*$/;

/**
 * Splits generated text (decoded with special tokens kept) into reasoning and answer. Trailing
 * `<eos>`/`<pad>` tokens are ignored. Malformed text still yields a best-effort answer so that
 * answer accuracy and format can be scored separately.
 */
export function parseCompletion(text: string): ParsedCompletion {
  const body = text.replace(TRAILING_END_TOKENS, '');
  const m = WELL_FORMED.exec(body);
  if (m && !TAGS.some((t) => m[1]!.includes(t) || m[2]!.includes(t))) {
    return { reasoning: m[1]!.trim(), answer: m[2]!.trim(), wellFormed: true };
  }
  return { reasoning: lenientReasoning(body), answer: lenientAnswer(body), wellFormed: false };
}

function lenientReasoning(body: string): string {
  const start = body.indexOf(THINK_OPEN);
  if (start === -1) return '';
  const rest = body.slice(start + THINK_OPEN.length);
  const end = firstIndexOf(rest, [THINK_CLOSE, ANSWER_OPEN]);
  return stripTags(end === -1 ? rest : rest.slice(0, end));
}

function lenientAnswer(body: string): string {
  const open = body.indexOf(ANSWER_OPEN);
  if (open !== -1) {
    const rest = body.slice(open + ANSWER_OPEN.length);
    const close = rest.indexOf(ANSWER_CLOSE);
    return stripTags(close === -1 ? rest : rest.slice(0, close));
  }
  const thinkEnd = body.lastIndexOf(THINK_CLOSE);
  if (thinkEnd !== -1) return stripTags(body.slice(thinkEnd + THINK_CLOSE.length));
  // No tags at all: an unthinking model's whole output is its answer.
  return body.includes(THINK_OPEN) ? '' : stripTags(body);
}

function firstIndexOf(text: string, needles: readonly string[]): number {
  const hits = needles.map((n) => text.indexOf(n)).filter((i) => i !== -1);
  return hits.length > 0 ? Math.min(...hits) : -1;
}

function stripTags(text: string): string {
  let out = text;
  for (const t of SPECIAL_TOKENS) out = out.split(t).join(' ');
  return out.replace(/\s+/g, ' ').trim();
}

export interface GroundingTerm {
  kind: 'modality' | 'region';
  /** e.g. 'CT', 'chest'; for an unfamiliar organ value, its own words. */
  canonical: string;
  /** A trace must mention at least one of these (whole words, case-insensitive, plural allowed). */
  synonyms: readonly string[];
}

/** What a trace for this case must mention: its modality if known, its region if known. */
export function groundingTerms(meta: Pick<VqaCase, 'modality' | 'organ'>): GroundingTerm[] {
  const out: GroundingTerm[] = [];
  if (meta.modality) {
    const family = sourceModality(meta.modality);
    const own = meta.modality.trim().toLowerCase();
    out.push(
      family
        ? { kind: 'modality', canonical: family.canonical, synonyms: family.terms }
        : { kind: 'modality', canonical: meta.modality.trim(), synonyms: [own] },
    );
  }
  if (meta.organ) {
    const region = sourceRegion(meta.organ);
    const family = region.family ? REGION_FAMILIES.find((f) => f.canonical === region.family) : undefined;
    out.push(
      family
        ? { kind: 'region', canonical: family.canonical, synonyms: family.terms }
        : { kind: 'region', canonical: region.phrase.replace(/^the /, ''), synonyms: [region.phrase.replace(/^the /, '')] },
    );
  }
  return out;
}

/**
 * True when the trace names the case's modality and region (where known) and names no other
 * modality or incompatible region, so "CT of the chest" fails for an abdominal CT even though it
 * says "CT", and "CT of the chest and abdomen" fails too.
 */
export function isTraceGrounded(trace: string, meta: Pick<VqaCase, 'modality' | 'organ'>): boolean {
  for (const term of groundingTerms(meta)) {
    if (!term.synonyms.some((s) => mentions(trace, s))) return false;
    const families = term.kind === 'modality' ? MODALITY_FAMILIES : REGION_FAMILIES;
    if (!families.some((f) => f.canonical === term.canonical)) continue;
    for (const other of families) {
      const allowed = term.kind === 'modality' ? other.canonical === term.canonical : regionsCompatible(other.canonical, term.canonical);
      if (!allowed && other.terms.some((t) => mentions(trace, t))) return false;
    }
  }
  return true;
}
