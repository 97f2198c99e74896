import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BYTE_TO_CHAR, byteLevelPieces } from '../../src/data/byte-level.ts';
import { loadVqaUnion } from '../../src/data/jsonl-loader.ts';
import { SPECIAL_TOKENS } from '../../src/data/special-tokens.ts';
import { tokenizerCorpus } from '../../src/data/tokenizer-corpus.ts';
import { trainByteLevelBpe, type TokenizerJson } from '../../src/data/tokenizer-train.ts';
import { VqaTokenizer } from '../../src/data/tokenizer.ts';

const FIXTURES = ['test/fixtures/vqa/vqa-rad.jsonl', 'test/fixtures/vqa/slake.jsonl'];

async function fixtureCorpus(): Promise<string[]> {
  const data = await loadVqaUnion(FIXTURES);
  assert.equal(data.errors.length, 0);
  return tokenizerCorpus(data.cases);
}

/**
 * Textbook BPE: recount every pair after every merge. Slow, but obviously right; the trainer's
 * incremental counts and lazy heap must pick exactly the same merges in the same order.
 */
function referenceMerges(corpus: readonly string[], vocabSize: number, minFrequency: number): string[] {
  const counts = new Map<string, number>();
  const specialSplit = new RegExp(SPECIAL_TOKENS.map((t) => t.replace(/[/]/g, '\\/')).join('|'), 'g');
  for (const text of corpus) {
    for (const seg of text.split(specialSplit)) for (const p of byteLevelPieces(seg)) counts.set(p, (counts.get(p) ?? 0) + 1);
  }
  let words = [...counts].map(([p, f]) => ({ syms: Array.from(p), f }));
  const vocab = new Set<string>([...SPECIAL_TOKENS, ...BYTE_TO_CHAR]);
  const merges: string[] = [];
  while (vocab.size < vocabSize) {
    const pairs = new Map<string, { a: string; b: string; n: number }>();
    for (const w of words) {
      for (let i = 0; i + 1 < w.syms.length; i++) {
        const key = JSON.stringify([w.syms[i], w.syms[i + 1]]);
        const e = pairs.get(key) ?? { a: w.syms[i]!, b: w.syms[i + 1]!, n: 0 };
        e.n += w.f;
        pairs.set(key, e);
      }
    }
    let best: { a: string; b: string; n: number } | undefined;
    for (const e of pairs.values()) {
      if (!best || e.n > best.n || (e.n === best.n && (e.a < best.a || (e.a === best.a && e.b < best.b)))) best = e;
    }
    if (!best || best.n < minFrequency) break;
    merges.push(`${best.a} ${best.b}`);
    vocab.add(best.a + best.b);
    words = words.map((w) => {
      const out: string[] = [];
      for (let i = 0; i < w.syms.length; i++) {
        if (i + 1 < w.syms.length && w.syms[i] === best.a && w.syms[i + 1] === best.b) {
          out.push(best.a + best.b);
          i++;
        } else out.push(w.syms[i]!);
      }
      return { syms: out, f: w.f };
    });
  }
  return merges;
}

test('tokenizer.json layout: BPE model, ByteLevel pre-tokenizer and decoder, specials at ids 0..6', async () => {
  const json = trainByteLevelBpe(await fixtureCorpus(), { vocabSize: 400 });
  assert.equal(json.model.type, 'BPE');
  assert.equal(json.pre_tokenizer.type, 'ByteLevel');
  assert.equal(json.decoder.type, 'ByteLevel');
  assert.deepEqual(
    json.added_tokens.map((t) => [t.id, t.content, t.special]),
    SPECIAL_TOKENS.map((t, i) => [i, t, true]),
  );
  assert.deepEqual(SPECIAL_TOKENS, ['<image>', '<think>', '</think>', '<answer>', '</answer>', '<eos>', '<pad>']);
  for (const [i, t] of SPECIAL_TOKENS.entries()) assert.equal(json.model.vocab[t], i);
  // Every byte has its own symbol right after the specials, so no text is ever unencodable.
  for (let b = 0; b < 256; b++) assert.equal(json.model.vocab[BYTE_TO_CHAR[b]!], SPECIAL_TOKENS.length + b);
});

test('vocabulary is filled to exactly vocabSize, ids are dense, and every merge builds a vocabulary entry', async () => {
  const json = trainByteLevelBpe(await fixtureCorpus(), { vocabSize: 500 });
  const ids = Object.values(json.model.vocab).sort((a, b) => a - b);
  assert.deepEqual(
    ids,
    Array.from({ length: 500 }, (_, i) => i),
  );
  assert.ok(json.model.merges.length >= 500 - 263);
  for (const [a, b] of json.model.merges) {
    assert.ok(a in json.model.vocab && b in json.model.vocab && a + b in json.model.vocab, `${a} + ${b}`);
  }
});

test('merges are exactly those of textbook BPE (recount everything after each merge)', async () => {
  const corpus = await fixtureCorpus();
  for (const minFrequency of [1, 2, 3]) {
    const json = trainByteLevelBpe(corpus, { vocabSize: 700, minFrequency });
    assert.deepEqual(
      json.model.merges.map(([a, b]) => `${a} ${b}`),
      referenceMerges(corpus, 700, minFrequency),
      `minFrequency ${minFrequency}`,
    );
  }
});

test('trained merges compress medical words seen in the corpus', async () => {
  const corpus = [
    ...(await fixtureCorpus()),
    'Is there a pneumothorax?',
    'Is a pneumothorax present on the left?',
    '<think>X-ray of the chest; the question asks whether a finding is present.</think><answer>pneumothorax</answer>',
  ];
  const tk = new VqaTokenizer(trainByteLevelBpe(corpus, { vocabSize: 1024 }));
  for (const word of [' pneumothorax', ' mesenteric', ' abnormality', ' question']) {
    const tokens = tk.encode(word).length;
    assert.ok(tokens <= 2, `${JSON.stringify(word)}: ${tokens} tokens for ${Buffer.byteLength(word)} bytes`);
    assert.equal(tk.decode(tk.encode(word)), word);
  }
  const sentence = 'Is there a pneumothorax in the lung?';
  assert.ok(tk.encode(sentence).length * 3 < Buffer.byteLength(sentence));
});

test('special tokens are cut out before training: their characters never form merges', () => {
  const corpus = Array.from({ length: 50 }, (_, i) => `<think>trace ${i % 5}</think><answer>yes</answer><eos>`);
  const json = trainByteLevelBpe(corpus, { vocabSize: 300, minFrequency: 1 });
  for (const token of Object.keys(json.model.vocab)) {
    if ((SPECIAL_TOKENS as readonly string[]).includes(token)) continue;
    assert.ok(!/[<>/]/.test(token) || token.length === 1, `unexpected token ${token}`);
  }
  // "trace", "yes" and " 0".." 4" are what is left, and they are learned.
  assert.ok('trace' in json.model.vocab && 'yes' in json.model.vocab);
});

test('same corpus, in any order, gives byte-identical tokenizer.json', async () => {
  const corpus = await fixtureCorpus();
  const a = JSON.stringify(trainByteLevelBpe(corpus, { vocabSize: 600 }));
  const b = JSON.stringify(trainByteLevelBpe([...corpus], { vocabSize: 600 }));
  const c = JSON.stringify(trainByteLevelBpe([...corpus].reverse(), { vocabSize: 600 }));
  assert.equal(a, b);
  assert.equal(a, c);
  const d = JSON.stringify(trainByteLevelBpe([...corpus, 'pneumothorax pneumothorax'], { vocabSize: 600 }));
  assert.notEqual(a, d);
});

test('minFrequency: pairs rarer than the threshold are never merged, so training may stop short', () => {
  const json: TokenizerJson = trainByteLevelBpe(['abc', 'abd'], { vocabSize: 1000, minFrequency: 2 });
  assert.deepEqual(json.model.merges, [['a', 'b']]);
  assert.equal(Object.keys(json.model.vocab).length, 7 + 256 + 1);
});

test('invalid vocabulary sizes are refused', () => {
  for (const vocabSize of [0, 262, 100.5, 70000]) {
    assert.throws(() => trainByteLevelBpe(['x'], { vocabSize }), /vocabSize/);
  }
});

test('50k short strings train in well under a minute', async () => {
  // Vary the fixture strings so there are many distinct pieces, as in a real corpus.
  const base = await fixtureCorpus();
  const corpus: string[] = [];
  for (let i = 0; corpus.length < 50_000; i++) corpus.push(`${base[i % base.length]} ${i % 997} mm, case ${i}`);
  const started = performance.now();
  const json = trainByteLevelBpe(corpus, { vocabSize: 2048 });
  const seconds = (performance.now() - started) / 1000;
  assert.equal(Object.keys(json.model.vocab).length, 2048);
  // Measured ~1 s on a 2-core machine; the bound leaves room for a loaded CI box.
  assert.ok(seconds < 20, `took ${seconds.toFixed(1)} s`);
});
