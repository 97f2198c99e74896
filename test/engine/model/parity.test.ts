// The serving decoder (KV cache, last-position logits) and the training graph (all positions,
// log-probs of given targets) come from one definition: for the same weights and inputs they must
// agree, position by position.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { numPatches, patchDim } from '../../../src/engine/model/config.ts';
import { trainingBatch } from '../../../src/engine/model/batch-inputs.ts';
import { TrainingSession } from '../../../src/engine/train/training-session.ts';
import { newKeyValueNames, pastNames } from '../../../src/engine/model/serving-io.ts';
import { f32, i64, type ort, type Feed } from '../../../src/engine/ort/session.ts';
import { encodeImages } from '../../../src/runtime/generate.ts';
import { randomPatches, servingSessions, tinyModel } from '../../support/tiny-model.ts';

function logSoftmaxAt(logits: Float32Array, index: number): number {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  return logits[index] - max - Math.log(sum);
}

/** past ++ fresh along the positions axis of [1, H, P, Dh] tensors (batch 1: plain concatenation per head). */
function appendPositions(past: ort.Tensor, fresh: ort.Tensor): ort.Tensor {
  const [, H, P, Dh] = past.dims;
  const S = fresh.dims[2];
  const a = past.data as Float32Array;
  const n = fresh.data as Float32Array;
  const outData = new Float32Array(H * (P + S) * Dh);
  for (let h = 0; h < H; h++) {
    outData.set(a.subarray(h * P * Dh, (h + 1) * P * Dh), h * (P + S) * Dh);
    outData.set(n.subarray(h * S * Dh, (h + 1) * S * Dh), (h * (P + S) + P) * Dh);
  }
  return f32(outData, [1, H, P + S, Dh]);
}

test('serving decoder with KV cache reproduces the training graph log-probs (max abs diff <= 1e-4)', async () => {
  const m = tinyModel();
  const c = m.config;
  const np = numPatches(c);
  const rows = [
    [3, 9, 14, 2, 21, 7, 7, 11, 5],
    [8, 1, 17, 4],
  ];
  const patches = randomPatches(c, rows.length, 5);
  const batch = trainingBatch({ numPatches: np, rows, padId: 6 });
  const train = await TrainingSession.create(c, { withGrads: false });
  const { logprobs } = await train.forward(m.weights, patches, batch);

  const serving = await servingSessions(m);
  const { heads, dim, layers, vocabSize: V } = c.text;
  let worst = 0;
  let compared = 0;
  for (const [b, row] of rows.entries()) {
    const image = await encodeImages(serving, [patches.subarray(b * np * patchDim(c), (b + 1) * np * patchDim(c))]);
    // The cache this test keeps itself: the decoder returns only the new positions' keys/values.
    const past: Feed = {};
    for (let l = 0; l < layers; l++) {
      const n = pastNames(l);
      past[n.key] = f32(new Float32Array(0), [1, heads, 0, dim / heads]);
      past[n.value] = f32(new Float32Array(0), [1, heads, 0, dim / heads]);
    }
    // Feed the row one token at a time (the first pass also carries the image), reading the
    // next-token distribution after each.
    for (let t = 0; t < row.length - 1; t++) {
      const first = t === 0;
      const total = np + t + 1;
      const step = first ? np + 1 : 1;
      const feed: Feed = {
        ...past,
        image_embeds: first ? image : f32(new Float32Array(0), [1, 0, dim]),
        input_ids: i64([row[t]], [1, 1]),
        position_ids: i64(
          Array.from({ length: step }, (_, q) => total - step + q),
          [1, step],
        ),
        attention_bias: f32(
          Float32Array.from({ length: step * total }, (_, i) => (i % total > total - step + Math.floor(i / total) ? -1e9 : 0)),
          [1, 1, step, total],
        ),
      };
      const out = await serving.decoder.run(feed);
      for (let l = 0; l < layers; l++) {
        const n = pastNames(l);
        const fresh = newKeyValueNames(l);
        assert.deepEqual(out[fresh.key].dims, [1, heads, step, dim / heads]);
        past[n.key] = appendPositions(past[n.key], out[fresh.key]);
        past[n.value] = appendPositions(past[n.value], out[fresh.value]);
      }
      const servingLogp = logSoftmaxAt((out.logits.data as Float32Array).subarray(0, V), row[t + 1]);
      const trainingLogp = logprobs[b * batch.text + t];
      worst = Math.max(worst, Math.abs(servingLogp - trainingLogp));
      compared++;
    }
  }
  assert.equal(compared, 8 + 3);
  assert.ok(worst <= 1e-4, `max abs diff ${worst}`);
  console.log(`parity: ${compared} positions, max abs diff ${worst.toExponential(2)}`);
  // The check has teeth only if the distributions are far from uniform.
  const spread = Math.max(...logprobs) - Math.min(...Array.from(logprobs).filter((_, i) => batch.targetMask[i] === 1));
  assert.ok(spread > 1, `log-probs spread only ${spread}`);
});
