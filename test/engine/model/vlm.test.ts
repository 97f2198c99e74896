// The serving decoder's cache contract: it takes any number P of cached positions and returns the
// keys/values of only the S positions it was fed, [B, H, S, Dh] per layer — never past + new.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { numPatches, patchDim } from '../../../src/engine/model/config.ts';
import { newKeyValueNames, pastNames } from '../../../src/engine/model/serving-io.ts';
import { buildDecoderGraph } from '../../../src/engine/model/vlm.ts';
import { f32, i64, type Feed } from '../../../src/engine/ort/session.ts';
import { encodeImages } from '../../../src/runtime/generate.ts';
import { randomPatches, servingSessions, tinyModel } from '../../support/tiny-model.ts';

test('decoder graph declares new_key_values.{l} outputs of shape [batch, H, S, Dh]', () => {
  const m = tinyModel();
  const { heads, dim, layers } = m.config.text;
  const g = buildDecoderGraph(m.config, m.weights);
  const outputs = new Map(g.outputs.map((v) => [v.name, v]));
  assert.equal(outputs.size, 1 + 2 * layers);
  for (let l = 0; l < layers; l++) {
    for (const name of Object.values(newKeyValueNames(l))) {
      const shape = outputs.get(name)?.shape;
      assert.ok(shape, `missing output ${name}`);
      assert.equal(shape[1], heads);
      assert.equal(shape[3], dim / heads);
      assert.notEqual(shape[2], 'past', `${name} must not depend on the cached length`);
    }
  }
});

test('prefill and cached steps return only the fed positions: [B, H, S, Dh]', async () => {
  const m = tinyModel();
  const c = m.config;
  const { heads, dim, layers } = c.text;
  const Dh = dim / heads;
  const np = numPatches(c);
  const s = await servingSessions(m);
  const B = 2;
  const pd = np * patchDim(c);
  const patches = randomPatches(c, B, 3);
  const image = await encodeImages(
    s,
    [0, 1].map((b) => patches.subarray(b * pd, (b + 1) * pd)),
  );
  const run = async (I: number, T: number, P: number) => {
    const S = I + T;
    const feed: Feed = {
      image_embeds: I ? image : f32(new Float32Array(0), [B, 0, dim]),
      input_ids: i64(
        Array.from({ length: B * T }, (_, i) => 7 + (i % 5)),
        [B, T],
      ),
      position_ids: i64(
        Array.from({ length: B * S }, (_, i) => P + (i % S)),
        [B, S],
      ),
      attention_bias: f32(new Float32Array(B * S * (P + S)), [B, 1, S, P + S]),
    };
    for (let l = 0; l < layers; l++) {
      const n = pastNames(l);
      feed[n.key] = f32(new Float32Array(B * heads * P * Dh).fill(0.1), [B, heads, P, Dh]);
      feed[n.value] = f32(new Float32Array(B * heads * P * Dh).fill(0.2), [B, heads, P, Dh]);
    }
    const out = await s.decoder.run(feed);
    assert.deepEqual(out.logits.dims, [B, c.text.vocabSize]);
    for (let l = 0; l < layers; l++) {
      const n = newKeyValueNames(l);
      assert.deepEqual(out[n.key].dims, [B, heads, S, Dh], `${n.key} with P=${P}, S=${S}`);
      assert.deepEqual(out[n.value].dims, [B, heads, S, Dh], `${n.value} with P=${P}, S=${S}`);
    }
  };
  await run(np, 3, 0); // prefill: image + prompt, nothing cached
  await run(0, 1, np + 3); // one step over a cache of exactly the written positions
  await run(0, 1, 40); // one step over a larger preallocated cache
  await run(0, 2, 17);
});
