// Imaging-modality and body-region vocabulary for checking whether a reasoning trace talks about the
// image it was given. Terms are matched on `canonicalTokens`, so "x-ray"/"radiograph"/"CR" are all
// "xray" and "renal"/"kidneys" are "kidney" before lookup.
//
// Organ labels differ by dataset (VQA-RAD: HEAD/CHEST/ABD; SLAKE: Lung, Abdomen, Brain_Tissue,
// Chest_heart, Pelvic Cavity, ...). They are mapped onto five coarse body regions, because a trace about a
// SLAKE "Lung" image that says "chest" or "right lower lobe... lung" is talking about the right image.

import { canonicalTokens } from './answer-match.ts';

export type Modality = 'ct' | 'mri' | 'xray' | 'ultrasound' | 'pet';
export type BodyRegion = 'head' | 'neck' | 'chest' | 'abdomen' | 'pelvis';

/** Canonical-token phrases that name each modality in free text. */
const MODALITY_TERMS: Readonly<Record<Modality, readonly string[]>> = {
  ct: ['ct', 'hounsfield'],
  // MRI sequences only exist on MRI, so naming one is naming the modality.
  mri: ['mri', 't1', 't2', 'flair', 'diffusion weighted', 'dwi', 'adc'],
  xray: ['xray', 'chest xray', 'fluoroscopy'],
  ultrasound: ['ultrasound', 'doppler', 'echogenic', 'hypoechoic', 'hyperechoic', 'anechoic'],
  pet: ['pet', 'positron emission tomography', 'fdg'],
};

/** Canonical-token words that place a trace in a body region (organs included). */
const REGION_TERMS: Readonly<Record<BodyRegion, readonly string[]>> = {
  // Words shared between regions ("lobe", "cortex", "ventricle", "aorta") are deliberately absent: they
  // would let a frontal-lobe trace "contradict" a head case by sounding like a lung.
  head: ['head', 'brain', 'skull', 'cranial', 'intracranial', 'cerebellum', 'cerebellar', 'sinus', 'orbit', 'face', 'facial', 'gyrus', 'sulcus'],
  neck: ['neck', 'thyroid', 'larynx', 'laryngeal', 'carotid', 'cervical'],
  chest: [
    'chest',
    'lung',
    'heart',
    'mediastinum',
    'mediastinal',
    'pleura',
    'pleural',
    'rib',
    'hilum',
    'hilar',
    'trachea',
    'bronchus',
    'bronchi',
    'diaphragm',
    'costophrenic',
    'cardiomegaly',
    'pneumothorax',
    'breast',
  ],
  abdomen: [
    'abdomen',
    'liver',
    'kidney',
    'spleen',
    'pancreas',
    'pancreatic',
    'bowel',
    'intestine',
    'colon',
    'stomach',
    'gallbladder',
    'duodenum',
    'adrenal',
    'peritoneal',
    'retroperitoneal',
    'biliary',
    'pancreatic head',
    'head of pancreas',
  ],
  // "femoral head" must out-rank "head" (longer terms win, see `mentions`).
  pelvis: [
    'pelvis',
    'bladder',
    'uterus',
    'uterine',
    'prostate',
    'rectum',
    'rectal',
    'ovary',
    'ovarian',
    'hip',
    'sacrum',
    'femoral',
    'femur',
    'femoral head',
    'head of femur',
  ],
};

/** Region pairs that cannot both be the subject of one image (a head CT never shows the liver). */
const INCOMPATIBLE_REGIONS: ReadonlySet<string> = new Set(
  [
    ['head', 'chest'],
    ['head', 'abdomen'],
    ['head', 'pelvis'],
    ['neck', 'abdomen'],
    ['neck', 'pelvis'],
    ['chest', 'pelvis'],
  ].flatMap(([a, b]) => [`${a}|${b}`, `${b}|${a}`]),
);

/**
 * Words that, right before a term, mean the trace is ruling it out ("not an MRI", "rather than CT").
 * The window is two tokens (articles are already dropped) so that "no mass in the liver" still places
 * the trace in the liver; "non" is absent because "non-contrast CT" is a CT.
 */
const NEGATORS = new Set(['not', 'no', 'without', 'than', 'nor', 'neither', 'instead']);
const NEGATION_WINDOW = 2;

function splitPhrases<K extends string>(table: Readonly<Record<K, readonly string[]>>): [K, string[]][] {
  return (Object.keys(table) as K[]).flatMap((k) => table[k].map((p) => [k, p.split(' ')] as [K, string[]]));
}
const MODALITY_PHRASES = splitPhrases(MODALITY_TERMS);
const REGION_PHRASES = splitPhrases(REGION_TERMS);

/** Modality named by a metadata label ('CT', 'MRI', 'X-Ray', 'MR', 'US'...), or null if unrecognised. */
export function modalityOfLabel(label: string | undefined): Modality | null {
  if (!label) return null;
  if (/^\s*us\s*$/i.test(label)) return 'ultrasound'; // as a metadata label "US" is unambiguous
  return firstTermIn(canonicalTokens(label), MODALITY_PHRASES);
}

/** Body region named by an organ label ('ABD', 'head', 'Brain_Tissue', 'Chest_heart', 'Pelvic Cavity'). */
export function regionOfLabel(label: string | undefined): BodyRegion | null {
  if (!label) return null;
  // First recognised word decides: "Chest_heart" is chest, "Brain_Face" is head.
  return firstTermIn(canonicalTokens(label), REGION_PHRASES);
}

function firstTermIn<K extends string>(toks: readonly string[], phrases: readonly [K, string[]][]): K | null {
  for (let i = 0; i < toks.length; i++) {
    for (const [key, phrase] of phrases) if (startsAt(toks, phrase, i)) return key;
  }
  return null;
}

function startsAt(toks: readonly string[], phrase: readonly string[], i: number): boolean {
  if (i + phrase.length > toks.length) return false;
  for (let j = 0; j < phrase.length; j++) if (toks[i + j] !== phrase[j]) return false;
  return true;
}

function findSpans(toks: readonly string[], phrase: readonly string[]): number[] {
  const out: number[] = [];
  for (let i = 0; i + phrase.length <= toks.length; i++) if (startsAt(toks, phrase, i)) out.push(i);
  return out;
}

function isNegated(toks: readonly string[], at: number): boolean {
  for (let j = Math.max(0, at - NEGATION_WINDOW); j < at; j++) if (NEGATORS.has(toks[j]!)) return true;
  return false;
}

export interface TermMentions<K extends string> {
  /** Named anywhere, negated or not. */
  all: Set<K>;
  /** Named at least once without a negator just before it. */
  affirmed: Set<K>;
}

function mentions<K extends string>(text: string, phrases: readonly [K, string[]][]): TermMentions<K> {
  const toks = canonicalTokens(text);
  const spans: { key: K; at: number; end: number }[] = [];
  for (const [key, phrase] of phrases) {
    for (const at of findSpans(toks, phrase)) spans.push({ key, at, end: at + phrase.length });
  }
  const all = new Set<K>();
  const affirmed = new Set<K>();
  for (const s of spans) {
    // A term inside a longer term is not a mention of its own: "femoral head" is the pelvis, not the head.
    if (spans.some((o) => o !== s && o.end - o.at > s.end - s.at && o.at <= s.at && s.end <= o.end)) continue;
    all.add(s.key);
    if (!isNegated(toks, s.at)) affirmed.add(s.key);
  }
  return { all, affirmed };
}

export function modalitiesMentioned(text: string): TermMentions<Modality> {
  return mentions(text, MODALITY_PHRASES);
}

export function regionsMentioned(text: string): TermMentions<BodyRegion> {
  return mentions(text, REGION_PHRASES);
}

export function regionsIncompatible(a: BodyRegion, b: BodyRegion): boolean {
  return INCOMPATIBLE_REGIONS.has(`${a}|${b}`);
}

export interface CaseImagingMetadata {
  modality?: string;
  organ?: string;
}

export interface MetadataGrounding {
  /** The case has a modality or organ label, so there is something to check the trace against. */
  applicable: boolean;
  /** Does the trace name the case's modality (not only negated)? null when the case has no modality label. */
  mentionsModality: boolean | null;
  /** Does the trace name the case's body region (not only negated)? null when the case has no organ label. */
  mentionsRegion: boolean | null;
  /** The trace affirms a modality other than the case's (one image has one modality). */
  contradictsModality: boolean;
  /** The trace affirms a body region that cannot share an image with the case's (head vs abdomen). */
  contradictsRegion: boolean;
  /** applicable, every known label mentioned, and no contradiction. */
  grounded: boolean;
}

/**
 * Trace grounding against image metadata — the "reasoning quality" the evaluation reports and the embedded
 * semantic judge builds on. Precisely:
 *
 *  - A label the vocabulary recognises (modality 'CT'/'MRI'/'X-Ray'…, organ 'Lung'/'abd'/'Brain_Face'…)
 *    must be named in the trace by one of its terms (for an organ: any term of its body region, so
 *    "lungs", "chest" or "heart" ground a SLAKE 'Lung' case), not only in a negated phrase ("not an MRI").
 *    The trace must also not affirm a different modality, nor a body region incompatible with the case's.
 *  - A label the vocabulary does not recognise (a new dataset's 'Knee') must appear in the trace as its own
 *    words; no contradiction can be checked for it.
 *  - A missing label is not checked. VQA-RAD has `organ` (head/chest/abd) but no `modality`: its traces
 *    are checked for the body region only, and naming a modality there is neither required nor penalised.
 *  - A case with neither label is not applicable (`applicable: false`, `grounded: false`); rates over a
 *    split count only applicable cases.
 */
export function traceMetadataGrounding(trace: string, c: CaseImagingMetadata): MetadataGrounding {
  const modalityLabel = c.modality?.trim() || undefined;
  const organLabel = c.organ?.trim() || undefined;
  const modality = modalityOfLabel(modalityLabel);
  const region = regionOfLabel(organLabel);
  const toks = canonicalTokens(trace);
  const modalities = modalitiesMentioned(trace);
  const regions = regionsMentioned(trace);

  const mentionsModality = modalityLabel === undefined ? null : modality !== null ? modalities.affirmed.has(modality) : mentionsLabelWords(toks, modalityLabel);
  const mentionsRegion = organLabel === undefined ? null : region !== null ? regions.affirmed.has(region) : mentionsLabelWords(toks, organLabel);
  const contradictsModality = modality !== null && [...modalities.affirmed].some((m) => m !== modality);
  const contradictsRegion = region !== null && [...regions.affirmed].some((r) => regionsIncompatible(r, region));
  const applicable = mentionsModality !== null || mentionsRegion !== null;
  const grounded = applicable && mentionsModality !== false && mentionsRegion !== false && !contradictsModality && !contradictsRegion;
  return { applicable, mentionsModality, mentionsRegion, contradictsModality, contradictsRegion, grounded };
}

/** The label's own canonical words appear, in order, somewhere in the trace ("Knee" -> "knee"). */
function mentionsLabelWords(traceTokens: readonly string[], label: string): boolean {
  const words = canonicalTokens(label);
  return words.length > 0 && findSpans(traceTokens, words).some((at) => !isNegated(traceTokens, at));
}
