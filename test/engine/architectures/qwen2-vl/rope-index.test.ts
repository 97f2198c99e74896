import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { buildPromptIds, expandImageTokens, questionTurns } from '../../../../src/engine/architectures/qwen2-vl/prompt.ts';
import { batchRopeIndex, decodePosition, ropeIndex, type GridThw } from '../../../../src/engine/architectures/qwen2-vl/rope-index.ts';
import { readHfFolder } from '../../../../src/hf/folder.ts';
import { GOLDEN_DIR, REFERENCE_DIR } from '../../../support/hf-folders.ts';

const SPEC = { imageTokenId: 508, visionStartTokenId: 505, spatialMergeSize: 2 };
const VS = 505;
const VE = 506;
const I = 508;

interface GoldenCase {
  input_ids: number[];
  position_ids: number[][];
  rope_delta: number;
  image_grid_thw: [number, number, number][];
  prompt_length: number;
  generated_ids: number[];
  decode_position_ids: { positions: number[] };
}

// Worked by hand from get_rope_index: text 0..1; image 1 (llm grid 1×2×2) at 2: t 2222, h 2233, w 2323;
// text resumes at max 3 + 1 = 4 (VE, 2, VS = 4, 5, 6); image 2 (llm grid 1×1×2) at 7: t 77, h 77, w 78;
// text at 9, 10. rope_delta = 11 − 13.
const MULTI_IDS = [1, VS, I, I, I, I, VE, 2, VS, I, I, VE, 3];
const MULTI_GRIDS: GridThw[] = [
  [1, 4, 4],
  [1, 2, 4],
];
const MULTI_POSITIONS = [
  [0, 1, 2, 2, 2, 2, 4, 5, 6, 7, 7, 9, 10],
  [0, 1, 2, 2, 3, 3, 4, 5, 6, 7, 7, 9, 10],
  [0, 1, 2, 3, 2, 3, 4, 5, 6, 7, 8, 9, 10],
];

const rows = (p: { positions: Int32Array[] }) => p.positions.map((r) => [...r]);

describe('Qwen2-VL positions (get_rope_index)', () => {
  let golden: GoldenCase;
  before(async () => {
    golden = JSON.parse(await readFile(path.join(GOLDEN_DIR, 'case.json'), 'utf8')) as GoldenCase;
  });

  it('reproduces the golden position_ids, rope_delta and decode positions', () => {
    const out = ropeIndex(golden.input_ids, golden.image_grid_thw, SPEC);
    assert.deepEqual(rows(out), golden.position_ids);
    assert.equal(out.ropeDelta, golden.rope_delta);
    const L = golden.prompt_length;
    // step s ≥ 1 feeds generated_ids[s − 1] at cache index L + s − 1
    const decode = golden.decode_position_ids.positions.map((_, k) => decodePosition(L + k, out.ropeDelta));
    assert.deepEqual(decode, golden.decode_position_ids.positions);
  });

  it('two images of different grids, worked by hand', () => {
    const out = ropeIndex(MULTI_IDS, MULTI_GRIDS, SPEC);
    assert.deepEqual(rows(out), MULTI_POSITIONS);
    assert.equal(out.ropeDelta, -2);
  });

  it('a text-only prompt: 0..n−1 on all three rows, rope_delta 0', () => {
    const out = ropeIndex([5, 6, 7, 8], [], SPEC);
    assert.deepEqual(rows(out), [
      [0, 1, 2, 3],
      [0, 1, 2, 3],
      [0, 1, 2, 3],
    ]);
    assert.equal(out.ropeDelta, 0);
  });

  it('refuses a prompt whose image blocks do not match the images', () => {
    assert.throws(() => ropeIndex(MULTI_IDS, MULTI_GRIDS.slice(0, 1), SPEC), /2 image block\(s\) but 1 image\(s\)/);
    assert.throws(() => ropeIndex([1, VS, I, I, VE], [[1, 4, 4]], SPEC), /needs 4 image tokens, the prompt has 2/);
  });

  it('left-padded batch: each row keeps its own positions and decodes at the positions it has alone', () => {
    const batch = [golden.input_ids, MULTI_IDS, [5, 6, 7, 8, 9]];
    const grids = [golden.image_grid_thw, MULTI_GRIDS, []];
    const out = batchRopeIndex(batch, grids, SPEC);
    const L = 40;
    assert.equal(out.length, L);
    assert.deepEqual(out.padding, [0, 27, 35]);
    batch.forEach((ids, b) => {
      const alone = ropeIndex(ids, grids[b]!, SPEC);
      const pad = out.padding[b]!;
      for (let axis = 0; axis < 3; axis++) {
        const row = [...out.positionIds.subarray((axis * 3 + b) * L, (axis * 3 + b + 1) * L)].map(Number);
        assert.deepEqual(row.slice(pad), [...alone.positions[axis]!]);
        assert.ok(
          row.slice(0, pad).every((p) => p === 1),
          'padding holds 1, as in HF',
        );
      }
      const mask = [...out.attentionMask.subarray(b * L, (b + 1) * L)].map(Number);
      assert.deepEqual(mask, [...new Array<number>(pad).fill(0), ...new Array<number>(ids.length).fill(1)]);
      assert.equal(out.ropeDeltas[b], alone.ropeDelta - pad);
      for (let step = 0; step < 8; step++) {
        assert.equal(decodePosition(L + step, out.ropeDeltas[b]!), decodePosition(ids.length + step, alone.ropeDelta));
      }
    });
  });
});

describe('Qwen2-VL prompt', () => {
  it("renders with the folder's template and expands the placeholder to the image's token count", async () => {
    const folder = await readHfFolder(REFERENCE_DIR);
    const source = { render: folder.chatTemplate.render.bind(folder.chatTemplate), encode: (t: string) => folder.tokenizer.encode(t) };
    const ids = buildPromptIds(source, questionTurns('What modality is used to take this image?', 1), { imageTokenId: I, imageTokenCounts: [24] });
    const start = ids.indexOf(VS);
    assert.equal(ids[start + 25], VE);
    assert.ok(ids.slice(start + 1, start + 25).every((id) => id === I));
    assert.equal(ids.filter((id) => id === I).length, 24);
    assert.ok(folder.tokenizer.decode(ids).endsWith('<|im_end|>\n<|im_start|>assistant\n'));
    const positions = ropeIndex(ids, [[1, 8, 12]], SPEC);
    // The image block takes 24 slots but only max(4, 6) = 6 positions: 24 − 6 = 18 fewer positions than tokens.
    assert.equal(positions.ropeDelta, -18);

    const withSystem = buildPromptIds(source, questionTurns('Q?', 1, 'You are a radiologist.'), { imageTokenId: I, imageTokenCounts: [4] });
    const text = folder.tokenizer.decode(withSystem);
    assert.match(text, /^<\|im_start\|>system\nYou are a radiologist\.<\|im_end\|>\n<\|im_start\|>user\n<\|vision_start\|>/);
    assert.doesNotMatch(text, /helpful assistant/);
  });

  it('refuses a count list that does not match the placeholders', () => {
    assert.throws(() => expandImageTokens([1, I, 2], I, [4, 4]), /1 image placeholder\(s\) but 2 image\(s\)/);
    assert.deepEqual(expandImageTokens([1, I, 2, I], I, [2, 3]), [1, I, I, 2, I, I, I]);
  });
});
