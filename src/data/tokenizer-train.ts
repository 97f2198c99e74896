// Trains a byte-level BPE tokenizer on our own questions, answers and traces and writes it as a
// Hugging Face tokenizer.json. Training from scratch keeps the vocabulary small (a few thousand
// tokens) and medical: pretrained vocabularies spend most of their 50k+ rows on text we never see.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BYTE_TO_CHAR, splitPieces, toByteChars } from './byte-level.ts';
import { SPECIAL_TOKENS } from './special-tokens.ts';

export interface BpeTrainOptions {
  /** Total vocabulary including special tokens and the 256 byte symbols. */
  vocabSize: number;
  /** A pair seen fewer times than this is never merged (default 2: no merges for one-offs). */
  minFrequency?: number;
  /** Special tokens given ids 0..n-1 in this order (default SPECIAL_TOKENS). */
  specialTokens?: readonly string[];
}

/** The subset of the tokenizer.json schema we write; the Rust library and tokenizers.js both read it. */
export interface TokenizerJson {
  version: '1.0';
  truncation: null;
  padding: null;
  added_tokens: Array<{
    id: number;
    content: string;
    single_word: false;
    lstrip: false;
    rstrip: false;
    normalized: false;
    special: true;
  }>;
  normalizer: null;
  pre_tokenizer: { type: 'ByteLevel'; add_prefix_space: false; trim_offsets: true; use_regex: true };
  post_processor: null;
  decoder: { type: 'ByteLevel'; add_prefix_space: false; trim_offsets: true; use_regex: true };
  model: {
    type: 'BPE';
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: false;
    byte_fallback: false;
    ignore_merges: false;
    vocab: Record<string, number>;
    merges: Array<[string, string]>;
  };
}

// Pair keys pack two symbol ids into one number; ids stay below 2^16 so keys stay exact integers.
const PAIR_BASE = 65536;

/**
 * Learns merges by pair frequency over the distinct pre-tokenized pieces of the corpus. Pair counts
 * are updated incrementally (only the words containing the merged pair are touched) and the best
 * pair comes from a lazily-invalidated max-heap. Ties go to the pair whose (left, right) strings
 * sort first, so the same corpus always yields the same tokenizer.
 */
export function trainByteLevelBpe(corpus: readonly string[], opts: BpeTrainOptions): TokenizerJson {
  const specials = opts.specialTokens ?? SPECIAL_TOKENS;
  const minFrequency = Math.max(1, opts.minFrequency ?? 2);
  const baseSize = specials.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < baseSize || opts.vocabSize > PAIR_BASE) {
    throw new Error(`vocabSize must be an integer in [${baseSize}, ${PAIR_BASE}], got ${opts.vocabSize}`);
  }

  const symbols: string[] = [...specials, ...BYTE_TO_CHAR];
  const idOf = new Map<string, number>(symbols.map((s, i) => [s, i]));
  if (idOf.size !== symbols.length) throw new Error('special tokens must be distinct and not single byte characters');

  // Distinct pieces with their counts; special tokens are cut out first because at run time the
  // tokenizer matches them before pre-tokenizing, so their characters never reach the BPE model.
  // Raw pieces are counted first and spelled in bytes once each: a corpus repeats the same few
  // thousand words, and UTF-8 encoding every occurrence was most of the training time.
  const rawCounts = new Map<string, number>();
  const specialSplit = specials.length > 0 ? new RegExp(specials.map(escapeRegExp).join('|'), 'g') : null;
  for (const text of corpus) {
    for (const segment of specialSplit ? text.split(specialSplit) : [text]) {
      for (const piece of splitPieces(segment)) rawCounts.set(piece, (rawCounts.get(piece) ?? 0) + 1);
    }
  }
  const pieceCounts = new Map<string, number>();
  for (const [raw, count] of rawCounts) {
    const piece = toByteChars(raw);
    pieceCounts.set(piece, (pieceCounts.get(piece) ?? 0) + count);
  }
  // Sorted so word indices, and hence everything after, do not depend on corpus order.
  const pieces = [...pieceCounts.keys()].sort(compareStrings);
  const words: number[][] = pieces.map((p) => Array.from(p, (ch) => idOf.get(ch)!));
  const freqs: number[] = pieces.map((p) => pieceCounts.get(p)!);

  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  words.forEach((word, w) => {
    for (let i = 0; i + 1 < word.length; i++) {
      const key = word[i]! * PAIR_BASE + word[i + 1]!;
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + freqs[w]!);
      let set = pairWords.get(key);
      if (!set) {
        set = new Set();
        pairWords.set(key, set);
      }
      set.add(w);
    }
  });

  const heap = new PairHeap(symbols);
  for (const [key, count] of pairCounts) heap.push(count, key);

  const merges: Array<[string, string]> = [];
  while (idOf.size < opts.vocabSize) {
    const top = heap.pop();
    if (!top) break;
    if (pairCounts.get(top.key) !== top.count) continue; // stale entry
    if (top.count < minFrequency) break;

    const left = Math.floor(top.key / PAIR_BASE);
    const right = top.key % PAIR_BASE;
    const merged = symbols[left]! + symbols[right]!;
    merges.push([symbols[left]!, symbols[right]!]);
    // Two different merges can spell the same string (a+bc, ab+c); like the Rust trainer, reuse its id.
    let newId = idOf.get(merged);
    if (newId === undefined) {
      newId = symbols.length;
      symbols.push(merged);
      idOf.set(merged, newId);
    }

    const delta = new Map<number, number>();
    for (const w of pairWords.get(top.key) ?? []) {
      const word = words[w]!;
      const next = mergeWord(word, left, right, newId);
      if (next.length === word.length) continue; // set entries go stale after earlier merges
      const f = freqs[w]!;
      for (let i = 0; i + 1 < word.length; i++) {
        const key = word[i]! * PAIR_BASE + word[i + 1]!;
        delta.set(key, (delta.get(key) ?? 0) - f);
      }
      for (let i = 0; i + 1 < next.length; i++) {
        const key = next[i]! * PAIR_BASE + next[i + 1]!;
        delta.set(key, (delta.get(key) ?? 0) + f);
        let set = pairWords.get(key);
        if (!set) {
          set = new Set();
          pairWords.set(key, set);
        }
        set.add(w);
      }
      words[w] = next;
    }
    pairWords.delete(top.key);
    for (const [key, d] of delta) {
      if (d === 0) continue;
      const count = (pairCounts.get(key) ?? 0) + d;
      if (count > 0) {
        pairCounts.set(key, count);
        heap.push(count, key);
      } else {
        pairCounts.delete(key);
        pairWords.delete(key);
      }
    }
  }

  return buildTokenizerJson(symbols, merges, specials);
}

/** Assembles tokenizer.json from an id-ordered symbol list whose first entries are the specials. */
export function buildTokenizerJson(
  symbols: readonly string[],
  merges: ReadonlyArray<readonly [string, string]>,
  specials: readonly string[] = SPECIAL_TOKENS,
): TokenizerJson {
  const vocab: Record<string, number> = {};
  symbols.forEach((s, i) => (vocab[s] = i));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      // Array-form merges (tokenizers >= 0.20) stay unambiguous even if a symbol contained a space.
      merges: merges.map(([a, b]) => [a, b]),
    },
  };
}

export async function saveTokenizerJson(json: TokenizerJson, filePath: string): Promise<void> {
  await mkdir(path.dirname(filePath), { recursive: true });
  await writeFile(filePath, `${JSON.stringify(json, null, 2)}\n`);
}

/** Replaces every non-overlapping left-to-right occurrence of (left, right) by `merged`. */
function mergeWord(word: readonly number[], left: number, right: number, merged: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < word.length; i++) {
    if (i + 1 < word.length && word[i] === left && word[i + 1] === right) {
      out.push(merged);
      i++;
    } else {
      out.push(word[i]!);
    }
  }
  return out;
}

/** Max-heap on (count desc, left string asc, right string asc). */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];
  constructor(private readonly symbols: readonly string[]) {}

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { count: number; key: number } | undefined {
    const n = this.counts.length;
    if (n === 0) return undefined;
    const top = { count: this.counts[0]!, key: this.keys[0]! };
    this.swap(0, n - 1);
    this.counts.pop();
    this.keys.pop();
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < this.counts.length && this.before(l, best)) best = l;
      if (r < this.counts.length && this.before(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
    return top;
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    if (ci !== cj) return ci > cj;
    const ki = this.keys[i]!;
    const kj = this.keys[j]!;
    const byLeft = compareStrings(this.symbols[Math.floor(ki / PAIR_BASE)]!, this.symbols[Math.floor(kj / PAIR_BASE)]!);
    if (byLeft !== 0) return byLeft < 0;
    return compareStrings(this.symbols[ki % PAIR_BASE]!, this.symbols[kj % PAIR_BASE]!) < 0;
  }

  private swap(i: number, j: number): void {
    [this.counts[i], this.counts[j]] = [this.counts[j]!, this.counts[i]!];
    [this.keys[i], this.keys[j]] = [this.keys[j]!, this.keys[i]!];
  }
}

// Code-unit order rather than localeCompare: ties must break the same way on every machine.
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
