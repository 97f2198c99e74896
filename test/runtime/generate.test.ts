// Batched generation: the KV cache must change nothing but speed, left-padding in a batch must
// change nothing at all, and sampling must be reproducible from its seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { numPatches, patchDim } from '../../src/engine/model/config.ts';
import { generate, type GenerateRow, type ServingSessions } from '../../src/runtime/generate.ts';
import { randomPatches, servingSessions, tinyModel } from '../support/tiny-model.ts';

const PAD = 6;
const greedy = { temperature: 0, topP: 1 };
let sessions: ServingSessions;
const m = tinyModel();
const np = numPatches(m.config);
const pd = patchDim(m.config);
const patches = randomPatches(m.config, 3, 9);
const prompts = [
  [3, 9, 14, 2, 21],
  [8, 1],
  [12, 13, 15, 16, 17, 18, 19, 20],
];
const rowsWith = (sampling = greedy, maxTokens = 24, seeds: (number | undefined)[] = [1, 2, 3]): GenerateRow[] =>
  prompts.map((promptIds, b) => ({ patches: patches.subarray(b * np * pd, (b + 1) * np * pd), promptIds, sampling, maxTokens, seed: seeds[b] }));

test.before(async () => {
  sessions = await servingSessions(m);
});

test('KV-cache decoding equals full recomputation token for token', async () => {
  const cached = await generate(sessions, rowsWith(), { stopIds: [], padId: PAD, useCache: true });
  const full = await generate(sessions, rowsWith(), { stopIds: [], padId: PAD, useCache: false });
  assert.deepEqual(cached.rows, full.rows);
  for (const r of cached.rows) assert.equal(r.tokens.length, 24);
  // Random weights that always repeat one token would make this comparison empty.
  assert.ok(new Set(cached.rows.flatMap((r) => r.tokens)).size > 3);
});

/** The sessions with every decoder pass's logits recorded (to compare distributions, not only argmaxes). */
function recording(s: ServingSessions): { sessions: ServingSessions; logits: Float32Array[] } {
  const logits: Float32Array[] = [];
  const decoder = {
    run: async (feed: Parameters<ServingSessions['decoder']['run']>[0]) => {
      const out = await s.decoder.run(feed);
      logits.push(Float32Array.from(out.logits.data as Float32Array));
      return out;
    },
  } as unknown as ServingSessions['decoder'];
  return { sessions: { ...s, decoder }, logits };
}

test('cached decoding equals recomputation, logits included, when rows stop at different times', async () => {
  // Rows of different prompt lengths (so left padding differs) end at different steps — by their
  // own max_tokens or by a stop token — while the rest of the batch goes on past them, and the cache
  // grows several times on the way (see kv-slots.ts). Sampling at a high temperature makes the
  // tokens depend on the whole distribution, and the logits of every pass are compared as well:
  // the tiny model's greedy tokens alone barely notice a wrong mask.
  const hot = { temperature: 2, topP: 1 };
  const free = await generate(sessions, rowsWith(hot), { stopIds: [], padId: PAD, useCache: false });
  const stopAt = free.rows[1].tokens[4];
  const rows = rowsWith(hot).map((r, b) => ({ ...r, maxTokens: [24, 20, 9][b] }));
  const cached = recording(sessions);
  const full = recording(sessions);
  const a = await generate(cached.sessions, rows, { stopIds: [stopAt], padId: PAD, useCache: true });
  const b = await generate(full.sessions, rows, { stopIds: [stopAt], padId: PAD, useCache: false });
  assert.deepEqual(a.rows, b.rows);
  const lengths = a.rows.map((r) => r.tokens.length);
  assert.equal(new Set(lengths).size, 3, `rows should end at different steps: ${lengths}`);
  assert.equal(a.rows[1].finishReason, 'stop');
  assert.ok(a.rows.some((r) => r.finishReason === 'length'));
  assert.ok(new Set(a.rows.flatMap((r) => r.tokens)).size > 6, 'sampled tokens too uniform to compare');
  assert.equal(cached.logits.length, full.logits.length);
  let worst = 0;
  cached.logits.forEach((l, i) => l.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - full.logits[i][j])))));
  assert.ok(worst <= 1e-3, `logits differ by up to ${worst}`);
});

test('a row generates the same tokens alone as inside a left-padded batch', async () => {
  const batched = await generate(sessions, rowsWith(), { stopIds: [], padId: PAD });
  for (const [b, row] of rowsWith().entries()) {
    const alone = await generate(sessions, [row], { stopIds: [], padId: PAD });
    assert.deepEqual(alone.rows[0], batched.rows[b], `row ${b}`);
  }
});

test('stop tokens end a row and are kept; max_tokens ends it with finishReason length', async () => {
  const free = await generate(sessions, rowsWith(), { stopIds: [], padId: PAD });
  const stopAt = free.rows[0].tokens[3];
  const stopped = await generate(sessions, rowsWith(), { stopIds: [stopAt], padId: PAD });
  const first = free.rows[0].tokens.indexOf(stopAt);
  assert.deepEqual(stopped.rows[0].tokens, free.rows[0].tokens.slice(0, first + 1));
  assert.equal(stopped.rows[0].finishReason, 'stop');
  const short = await generate(sessions, rowsWith(greedy, 5), { stopIds: [], padId: PAD });
  for (const r of short.rows) {
    assert.equal(r.tokens.length, 5);
    assert.equal(r.finishReason, 'length');
  }
});

test('sampling: same seed gives the same tokens, other seeds differ, tiny top_p is greedy', async () => {
  const hot = { temperature: 1.5, topP: 1 };
  const a = await generate(sessions, rowsWith(hot, 24, [42, 42, 42]), { stopIds: [], padId: PAD });
  const b = await generate(sessions, rowsWith(hot, 24, [42, 42, 42]), { stopIds: [], padId: PAD });
  const c = await generate(sessions, rowsWith(hot, 24, [1, 2, 3]), { stopIds: [], padId: PAD });
  assert.deepEqual(a.rows, b.rows);
  assert.notDeepEqual(a.rows, c.rows);
  const nucleus = await generate(sessions, rowsWith({ temperature: 1.5, topP: 1e-6 }), { stopIds: [], padId: PAD });
  const argmax = await generate(sessions, rowsWith(), { stopIds: [], padId: PAD });
  assert.deepEqual(nucleus.rows, argmax.rows);
});

test('golden: greedy tokens of the seeded tiny model match the recorded ones', async () => {
  const out = await generate(sessions, rowsWith(greedy, 12), { stopIds: [], padId: PAD });
  const tokens = out.rows.map((r) => r.tokens);
  const file = new URL('../golden/tiny-greedy-tokens.json', import.meta.url);
  if (process.env.UPDATE_GOLDEN === '1') await writeFile(file, `${JSON.stringify({ tokens }, null, 1)}\n`);
  const golden = JSON.parse(await readFile(file, 'utf8')) as { tokens: number[][] };
  assert.deepEqual(tokens, golden.tokens);
});
