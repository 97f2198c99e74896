// Words for imaging modalities and body regions, shared by the trace builder (which writes them) and
// the grounding check (which looks for them). Each family lists the words that count as naming it,
// so "abd", "abdomen" and "abdominal" are one region and "MR" and "MRI" one modality.

export interface TermFamily {
  /** Stable name, e.g. 'chest' or 'MRI'. */
  canonical: string;
  /** Lower-case words or phrases that name this family in free text. */
  terms: readonly string[];
}

export const MODALITY_FAMILIES: readonly TermFamily[] = [
  { canonical: 'CT', terms: ['ct', 'cta', 'computed tomography', 'cat scan'] },
  { canonical: 'MRI', terms: ['mri', 'mr', 'mra', 'magnetic resonance'] },
  { canonical: 'X-ray', terms: ['x-ray', 'xray', 'radiograph', 'radiography', 'cxr', 'plain film'] },
  // Not in VQA-RAD or SLAKE, but a trace that claims an ultrasound of a CT case is still wrong.
  { canonical: 'ultrasound', terms: ['ultrasound', 'sonography', 'sonogram', 'ultrasonography'] },
];

export const REGION_FAMILIES: readonly TermFamily[] = [
  { canonical: 'head', terms: ['head', 'brain', 'skull', 'cranial', 'intracranial', 'cranium', 'cerebral', 'cerebrum', 'face', 'facial'] },
  { canonical: 'neck', terms: ['neck', 'cervical'] },
  { canonical: 'chest', terms: ['chest', 'thorax', 'thoracic', 'lung', 'pulmonary'] },
  { canonical: 'abdomen', terms: ['abd', 'abdomen', 'abdominal'] },
  { canonical: 'pelvis', terms: ['pelvis', 'pelvic'] },
];

/**
 * Region pairs that legitimately appear together in one study, so naming one for the other is
 * not "the wrong organ": abdominal CTs routinely cover the pelvis (VQA-RAD files them as 'abd').
 */
const COMPATIBLE_REGIONS: ReadonlyArray<readonly [string, string]> = [['abdomen', 'pelvis']];

export function regionsCompatible(a: string, b: string): boolean {
  return a === b || COMPATIBLE_REGIONS.some(([x, y]) => (x === a && y === b) || (x === b && y === a));
}

export interface SourceRegion {
  /** Family canonical name, or undefined when the source value names no known region. */
  family?: string;
  /** How a trace names it, e.g. 'the abdomen'. */
  phrase: string;
}

/** The source datasets' organ values, with the wording a trace uses for each. */
const KNOWN_ORGANS: Record<string, SourceRegion> = {
  // VQA-RAD
  head: { family: 'head', phrase: 'the head' },
  chest: { family: 'chest', phrase: 'the chest' },
  abd: { family: 'abdomen', phrase: 'the abdomen' },
  // SLAKE
  lung: { family: 'chest', phrase: 'the lungs' },
  abdomen: { family: 'abdomen', phrase: 'the abdomen' },
  brain_tissue: { family: 'head', phrase: 'the brain' },
  brain: { family: 'head', phrase: 'the brain' },
  brain_face: { family: 'head', phrase: 'the head and face' },
  'pelvic cavity': { family: 'pelvis', phrase: 'the pelvic cavity' },
  chest_lung: { family: 'chest', phrase: 'the chest (lungs)' },
  chest_heart: { family: 'chest', phrase: 'the chest (heart)' },
  chest_mediastinal: { family: 'chest', phrase: 'the chest (mediastinum)' },
  neck: { family: 'neck', phrase: 'the neck' },
};

/** Maps a dataset's organ value to a region; unfamiliar values fall back to their own words. */
export function sourceRegion(organ: string): SourceRegion {
  const known = KNOWN_ORGANS[organ.trim().toLowerCase()];
  if (known) return known;
  const words = organ.trim().replace(/_/g, ' ').toLowerCase();
  const family = REGION_FAMILIES.find((f) => f.terms.some((t) => mentions(words, t)));
  return family ? { family: family.canonical, phrase: `the ${words}` } : { phrase: `the ${words}` };
}

/** Maps a dataset's modality value (e.g. 'X-Ray') to its family, or undefined when unknown. */
export function sourceModality(modality: string): TermFamily | undefined {
  const m = modality.trim().toLowerCase();
  return MODALITY_FAMILIES.find((f) => f.canonical.toLowerCase() === m || f.terms.some((t) => mentions(m, t)));
}

const patternCache = new Map<string, RegExp>();

/**
 * Whole-word, case-insensitive match that also accepts a plural "s" and treats a space or hyphen
 * inside a term as optional ("x-ray" matches "X ray", "xray" and "X-rays"), while "mr" does not
 * match inside "MRI" and "head" does not match inside "forehead".
 */
export function mentions(text: string, term: string): boolean {
  let re = patternCache.get(term);
  if (!re) {
    const body = term
      .split(/[\s-]+/)
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[\\s-]?');
    re = new RegExp(`(?<![\\p{L}\\p{N}])${body}s?(?![\\p{L}\\p{N}])`, 'iu');
    patternCache.set(term, re);
  }
  return re.test(text);
}
