// Answer matching for medical VQA scoring: normalisation, a small medical synonym table, closed-question
// matching (yes/no, multiple choice, "X or Y" questions), open-question exact match and token-F1 credit.
//
// Everything here is a pure function of strings. Synonyms are applied to BOTH sides (prediction and gold),
// so mapping an adjective onto its noun ("renal" -> "kidney") can only make equivalent phrasings meet; it
// never invents a match between two answers that differ in a non-synonym word.

/** The fields of a case that answer scoring needs (structurally compatible with the data layer's case). */
export interface ScorableCase {
  question: string;
  answer: string;
  answerType: 'closed' | 'open';
  options?: string[];
}

export interface AnswerScore {
  /** Closed: exact decision. Open: full match after normalisation and synonyms. */
  correct: boolean;
  /** In [0, 1]. Closed: 0 or 1. Open: 1 on a full match, else token-F1 partial credit. */
  credit: number;
}

const ARTICLES = new Set(['a', 'an', 'the']);

const NUMBER_WORDS: Record<string, string> = {
  zero: '0',
  one: '1',
  two: '2',
  three: '3',
  four: '4',
  five: '5',
  six: '6',
  seven: '7',
  eight: '8',
  nine: '9',
  ten: '10',
  eleven: '11',
  twelve: '12',
  thirteen: '13',
  fourteen: '14',
  fifteen: '15',
  sixteen: '16',
  seventeen: '17',
  eighteen: '18',
  nineteen: '19',
  twenty: '20',
};

/**
 * Canonical term -> variant phrases (already in normalised, singularised token form). Multi-word variants
 * are matched longest-first, so "magnetic resonance imaging" wins over "magnetic resonance".
 */
export const MEDICAL_SYNONYMS: Readonly<Record<string, readonly string[]>> = {
  kidney: ['renal'],
  heart: ['cardiac'],
  lung: ['pulmonary'],
  liver: ['hepatic'],
  brain: ['cerebral'],
  stomach: ['gastric'],
  spleen: ['splenic'],
  chest: ['thorax', 'thoracic'],
  abdomen: ['abd', 'abdominal'],
  pelvis: ['pelvic'],
  xray: ['x ray', 'radiograph', 'radiography', 'plain film', 'cr', 'xray image', 'x ray image'],
  'chest xray': ['cxr'],
  mri: ['mr', 'magnetic resonance imaging', 'magnetic resonance', 'mr imaging', 'mri scan', 'mr scan'],
  ct: ['computed tomography', 'computerized tomography', 'computerised tomography', 'cat scan', 'ct scan'],
  ultrasound: ['ultrasonography', 'sonography', 'sonogram', 'usg'],
  t1: ['t1 weighted', 't1w'],
  t2: ['t2 weighted', 't2w'],
  left: ['left side', 'left sided', 'lt'],
  right: ['right side', 'right sided', 'rt'],
  bilateral: ['both side', 'both', 'bilaterally', 'left and right', 'right and left'],
};

const YES_WORDS = new Set(['yes', 'yeah', 'yep', 'yup', 'true', 'correct', 'affirmative']);
const NO_WORDS = new Set(['no', 'nope', 'false', 'incorrect']);

const MAX_PHRASE_TOKENS = 4;

/** variant phrase (space-joined tokens) -> canonical tokens; canonical forms map to themselves. */
const PHRASE_TO_CANONICAL: ReadonlyMap<string, readonly string[]> = (() => {
  const map = new Map<string, readonly string[]>();
  for (const [canonical, variants] of Object.entries(MEDICAL_SYNONYMS)) {
    const target = canonical.split(' ');
    map.set(canonical, target);
    for (const variant of variants) {
      if (variant.split(' ').length > MAX_PHRASE_TOKENS) throw new Error(`synonym too long: ${variant}`);
      map.set(variant, target);
    }
  }
  return map;
})();

/**
 * Basic normalisation: lowercase, strip punctuation (keeping decimal points inside numbers), drop
 * articles, collapse whitespace, number words to digits, numerals to a canonical form ("2.0" -> "2").
 */
export function normalizeTokens(text: string): string[] {
  const cleaned = text
    .normalize('NFKC')
    .toLowerCase()
    .replace(/[’‘`]/g, "'")
    .replace(/'s\b/g, '') // possessive: "patient's left" -> "patient left"
    .replace(/([a-z])'([a-z])/g, '$1$2') // contractions stay one word: "isn't" -> "isnt"
    .replace(/(\d),(?=\d{3}\b)/g, '$1') // thousands separator
    .replace(/(\d)([a-z])/g, '$1 $2') // "2cm" -> "2 cm"
    .replace(/[^a-z0-9.\s]/g, ' ')
    .replace(/(?<!\d)\.|\.(?!\d)/g, ' '); // dots that are not decimal points
  const tokens: string[] = [];
  for (const raw of cleaned.split(/\s+/)) {
    if (raw === '' || ARTICLES.has(raw)) continue;
    tokens.push(canonicalNumber(NUMBER_WORDS[raw] ?? raw));
  }
  return tokens;
}

/** Normalised answer as one string (for display, keys and exact comparisons without synonyms). */
export function normalizeAnswer(text: string): string {
  return normalizeTokens(text).join(' ');
}

function canonicalNumber(token: string): string {
  if (!/^\d+(\.\d+)?$/.test(token)) return token;
  return String(Number(token));
}

/**
 * Crude singularisation so "kidneys"/"kidney" and "ribs"/"rib" meet. Endings that are usually not plurals
 * in medical English (-ss, -us, -is, -as, -os: "mass", "uterus", "pelvis", "pancreas") are left alone.
 */
function singularize(token: string): string {
  if (token.length > 4 && token.endsWith('ies')) return `${token.slice(0, -3)}y`;
  if (token.length > 3 && token.endsWith('s') && !/(ss|us|is|as|os)$/.test(token)) return token.slice(0, -1);
  return token;
}

/** Normalised tokens with singularisation and the synonym table applied (longest phrase first). */
export function canonicalTokens(text: string): string[] {
  const tokens = normalizeTokens(text).map(singularize);
  const out: string[] = [];
  let i = 0;
  while (i < tokens.length) {
    let matched = false;
    for (let len = Math.min(MAX_PHRASE_TOKENS, tokens.length - i); len >= 1; len--) {
      const target = PHRASE_TO_CANONICAL.get(tokens.slice(i, i + len).join(' '));
      if (target) {
        out.push(...target);
        i += len;
        matched = true;
        break;
      }
    }
    if (!matched) out.push(tokens[i++]!);
  }
  return out;
}

/** 'yes' / 'no' when the answer starts with a yes/no word ("Yes, there is a mass" -> 'yes'), else null. */
export function yesNoPolarity(text: string): 'yes' | 'no' | null {
  const first = normalizeTokens(text)[0];
  if (first === undefined) return null;
  if (YES_WORDS.has(first)) return 'yes';
  if (NO_WORDS.has(first)) return 'no';
  return null;
}

/**
 * 'yes' / 'no' when the whole answer is one yes/no word ("Yes", "no."), else null. This is what makes a
 * question a yes/no question for the yes-bias metric: a gold answer "No acute findings" is not one.
 */
export function exactYesNo(text: string): 'yes' | 'no' | null {
  const toks = normalizeTokens(text);
  if (toks.length !== 1) return null;
  return yesNoPolarity(toks[0]!);
}

/** Open-question match: token sequences equal after normalisation and synonyms. */
export function openMatch(pred: string, gold: string): boolean {
  const p = canonicalTokens(pred);
  const g = canonicalTokens(gold);
  // An answer made only of articles/punctuation normalises to nothing; fall back to a literal comparison
  // so that two different such answers are not declared equal by accident of normalisation.
  if (g.length === 0 || p.length === 0) return gold.trim() !== '' && pred.trim().toLowerCase() === gold.trim().toLowerCase();
  return p.length === g.length && p.every((t, i) => t === g[i]);
}

/** SQuAD-style token F1 over canonical tokens (multiset overlap). Two empty answers score 1. */
export function tokenF1(pred: string, gold: string): number {
  const p = canonicalTokens(pred);
  const g = canonicalTokens(gold);
  if (p.length === 0 && g.length === 0) return 1;
  if (p.length === 0 || g.length === 0) return 0;
  const goldCounts = new Map<string, number>();
  for (const t of g) goldCounts.set(t, (goldCounts.get(t) ?? 0) + 1);
  let overlap = 0;
  for (const t of p) {
    const c = goldCounts.get(t) ?? 0;
    if (c > 0) {
      overlap++;
      goldCounts.set(t, c - 1);
    }
  }
  if (overlap === 0) return 0;
  const precision = overlap / p.length;
  const recall = overlap / g.length;
  return (2 * precision * recall) / (precision + recall);
}

function containsSpan(haystack: readonly string[], needle: readonly string[]): boolean {
  if (needle.length === 0 || needle.length > haystack.length) return false;
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Option label written as a letter: "B", "(b)", "B.", "option B", or "B. Lung" (letter + text). */
function parseOptionLetter(text: string): { index: number; rest: string } | null {
  const m = /^\s*(?:(?:option|choice|answer)\s*:?\s*)?\(?([a-z])(?:\)|\.|:|\s*$)\s*(.*)$/is.exec(text);
  if (!m) return null;
  // "a" followed by more words is the article, not option A ("a mass in the liver").
  const letterOnly = m[2]!.trim() === '';
  const explicitLabel = /^\s*(?:option|choice|answer|\()/i.test(text) || /^[a-z][).:]/i.test(text.trim());
  if (!letterOnly && !explicitLabel) return null;
  return { index: m[1]!.toLowerCase().charCodeAt(0) - 97, rest: m[2]!.trim() };
}

/** Drops a leading "A. " / "(A) " label from an option's own text. */
function optionBody(option: string): string {
  return option.replace(/^\s*\(?[a-z][).:]\s+/i, '');
}

/**
 * Options whose text appears in `pred`, keeping only the most specific ones: an option whose tokens are
 * contained in another mentioned option ("lung" inside "left lung") is not counted separately.
 */
function mentionedOptions(predTokens: readonly string[], optionTokens: readonly (readonly string[])[]): number[] {
  const mentioned = optionTokens.flatMap((toks, i) => (containsSpan(predTokens, toks) ? [i] : []));
  return mentioned.filter(
    (i) => !mentioned.some((j) => j !== i && optionTokens[j]!.length > optionTokens[i]!.length && containsSpan(optionTokens[j]!, optionTokens[i]!)),
  );
}

/** Index of the option an answer designates (by letter, exact text, or naming exactly one option), else null. */
export function resolveOption(answer: string, options: readonly string[]): number | null {
  const optionTokens = options.map((o) => canonicalTokens(optionBody(o)));
  const byText = (text: string): number | null => {
    const toks = canonicalTokens(text);
    if (toks.length === 0) return null;
    const exact = optionTokens.findIndex((o) => o.length === toks.length && o.every((t, i) => t === toks[i]));
    if (exact >= 0) return exact;
    const mentioned = mentionedOptions(toks, optionTokens);
    return mentioned.length === 1 ? mentioned[0]! : null;
  };
  const letter = parseOptionLetter(answer);
  if (letter && letter.index < options.length) {
    if (letter.rest === '') return letter.index;
    const textIndex = byText(letter.rest);
    // "B. Liver" where option B is not liver is self-contradictory: designate nothing.
    return textIndex === null || textIndex === letter.index ? letter.index : null;
  }
  return byText(answer);
}

/**
 * Alternatives listed before a question's last "or" after a comma-separated stem: "Which is bigger in this
 * image, liver, spleen or kidney?" -> [liver, spleen, kidney]. The first comma item is the question stem
 * and is dropped; without a comma there is no list (see `adjacentAlternatives`). Canonical tokens each.
 */
function listedAlternatives(question: string): string[][] {
  const m = /^(.*)\bor\b(.*)$/is.exec(question);
  if (!m) return [];
  const before = m[1]!.split(',').slice(1);
  if (before.length === 0) return [];
  const after = m[2]!.split(/[?,;.]/)[0]!;
  return [...before, after].map((item) => canonicalTokens(item)).filter((t) => t.length > 0 && t.length <= MAX_PHRASE_TOKENS);
}

/**
 * Alternatives read around each "or" as the spans of the gold answer's length on either side, when one
 * side equals the gold answer: "Is this a CT or an MRI?" with gold "CT" -> [ct, mri].
 */
function adjacentAlternatives(q: readonly string[], gold: readonly string[]): string[][] {
  const k = gold.length;
  const same = (a: readonly string[]) => a.length === k && a.every((t, i) => t === gold[i]);
  for (let orIdx = 0; orIdx < q.length; orIdx++) {
    if (q[orIdx] !== 'or') continue;
    const left = q.slice(Math.max(0, orIdx - k), orIdx);
    const right = q.slice(orIdx + 1, orIdx + 1 + k);
    if (same(left) && right.length > 0) return [left, right];
    if (same(right) && left.length > 0) return [left, right];
  }
  return [];
}

/**
 * For questions that name their alternatives ("Is this a CT or an MRI?", "left or right kidney?", "Which
 * is bigger, lung, liver or heart?"): correct when the prediction names the gold alternative and none of
 * the others. Words shared between alternatives ("plane" in "transverse plane or coronal plane") do not
 * decide; only the words that tell the gold alternative apart from each other one do.
 */
function matchesChoiceInQuestion(pred: string, c: ScorableCase): boolean {
  const gold = canonicalTokens(c.answer);
  if (gold.length === 0 || gold.length > MAX_PHRASE_TOKENS) return false;
  const isGold = (a: readonly string[]) => a.length === gold.length && a.every((t, i) => t === gold[i]);
  let alternatives = listedAlternatives(c.question);
  if (!alternatives.some(isGold)) alternatives = adjacentAlternatives(canonicalTokens(c.question), gold);
  const others = alternatives.filter((a) => !isGold(a));
  if (others.length === 0 || others.length === alternatives.length) return false;
  const p = new Set(canonicalTokens(pred));
  for (const other of others) {
    const goldOnly = gold.filter((t) => !other.includes(t));
    const otherOnly = other.filter((t) => !gold.includes(t));
    // Gold a sub-phrase of another alternative ("kidney" vs "left kidney"): the prediction cannot name
    // the gold one without the other's words being arguable; leave it to the exact match.
    if (goldOnly.length === 0) return false;
    if (!goldOnly.every((t) => p.has(t))) return false;
    // Naming any word that only another alternative has is hedging ("lung or liver") and fails.
    if (otherOnly.some((t) => p.has(t))) return false;
  }
  return true;
}

/**
 * Closed-question decision: yes/no by polarity of the prediction's first word; multiple choice by the
 * designated option (letter or text); otherwise exact match, then the question's own "X or Y" alternatives.
 */
export function closedMatch(pred: string, c: ScorableCase): boolean {
  const goldPolarity = yesNoPolarity(c.answer);
  if (goldPolarity !== null) return yesNoPolarity(pred) === goldPolarity;
  if (c.options && c.options.length > 0) {
    const goldIndex = resolveOption(c.answer, c.options);
    if (goldIndex !== null) return resolveOption(pred, c.options) === goldIndex;
  }
  if (openMatch(pred, c.answer)) return true;
  return matchesChoiceInQuestion(pred, c);
}

/**
 * Scores a predicted answer against a case. Closed: 0/1 by `closedMatch`. Open: 1 on `openMatch` (or, for
 * an open case that lists options, on designating the gold option), else token-F1 partial credit.
 */
export function scoreAnswer(pred: string, c: ScorableCase): AnswerScore {
  if (c.answerType === 'closed') {
    const correct = closedMatch(pred, c);
    return { correct, credit: correct ? 1 : 0 };
  }
  let correct = openMatch(pred, c.answer);
  if (!correct && c.options && c.options.length > 0) {
    const goldIndex = resolveOption(c.answer, c.options);
    correct = goldIndex !== null && resolveOption(pred, c.options) === goldIndex;
  }
  return { correct, credit: correct ? 1 : tokenF1(pred, c.answer) };
}
