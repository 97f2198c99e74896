// Scoring GRPO's sequences in several ORT passes must give what one pass gives: the same [N, T]
// log-probs, entropy and loss mask, and (summed over passes) the same weight gradient.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { numPatches, patchDim } from '../../../src/engine/model/config.ts';
import { TrainingSession } from '../../../src/engine/train/training-session.ts';
import { assembleBatch } from '../../../src/training/batches.ts';
import { backwardInChunks, scoreInChunks, scoringBatch } from '../../../src/training/grpo/chunked-scoring.ts';
import { initialModel } from '../../../src/training/model-init.ts';
import { requestRng } from '../../../src/runtime/sampling.ts';

const VOCAB = 64;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('chunked scoring equals one pass: log-probs, entropy, loss mask and summed gradients', async () => {
  const { config, weights } = await initialModel('scratch', 'tiny', VOCAB, 5);
  const rand = requestRng(11);
  const pd = numPatches(config) * patchDim(config);
  // Five rows of different prompt and completion lengths: chunks of two get different widths,
  // and the longest row sits in the last chunk.
  const lengths = [
    [3, 4],
    [5, 2],
    [2, 6],
    [4, 3],
    [3, 9],
  ];
  const rows = lengths.map(([prompt, completion]) => ({
    ids: Array.from({ length: prompt + completion }, () => 4 + Math.floor(rand() * (VOCAB - 4))),
    promptLength: prompt,
    patches: Float32Array.from({ length: pd }, () => rand() - 0.5),
  }));
  const one = scoringBatch(config, rows, 0, 100);
  const chunked = scoringBatch(config, rows, 0, 2);
  assert.equal(one.chunks.length, 1);
  assert.equal(chunked.chunks.length, 3);
  assert.equal(chunked.seqLen, one.seqLen);
  // The one-pass layout is exactly what the trainer used before chunking.
  assert.deepEqual([...one.lossMask], [...assembleBatch(config, rows, 0).lossMask]);
  assert.deepEqual([...chunked.lossMask], [...one.lossMask]);

  const session = await TrainingSession.create(config, { withGrads: true, intraOpThreads: 1 });
  try {
    const a = await scoreInChunks(session, weights, one);
    const b = await scoreInChunks(session, weights, chunked);
    const masked = (x: Float32Array) => x.map((v, i) => v * one.lossMask[i]!);
    assert.ok(maxAbsDiff(masked(a.logprobs), masked(b.logprobs)) < 1e-5);
    assert.ok(maxAbsDiff(masked(a.entropy), masked(b.entropy)) < 1e-5);

    const grad = Float32Array.from(one.lossMask, (m) => m * (rand() - 0.5));
    const ga = await backwardInChunks(session, weights, one, grad);
    const gb = await backwardInChunks(session, weights, chunked, grad);
    let worst = 0;
    for (const [name, g] of ga) {
      const scale = Math.max(1e-3, ...g.map(Math.abs));
      worst = Math.max(worst, maxAbsDiff(g, gb.get(name)!) / scale);
    }
    assert.ok(worst < 1e-4, `largest gradient difference ${worst} of the tensor's largest entry`);
    assert.ok(
      [...ga.values()].some((g) => g.some((x) => x !== 0)),
      'the gradient should not be all zero',
    );
  } finally {
    await session.release();
  }
});
