// The whole model (vision encoder + decoder + tied head + log-prob selection) differentiated by
// our autodiff, checked against central finite differences in float64 on ONNX Runtime.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { presetConfig, numPatches, patchDim } from '../../../src/engine/model/config.ts';
import { buildForwardOn, parameterSpecs } from '../../../src/engine/model/vlm.ts';
import { initWeights } from '../../../src/engine/model/params.ts';
import { trainingBatch } from '../../../src/engine/model/batch-inputs.ts';
import { gradCheck, seededUniform, type CheckFeed } from '../../../src/engine/autodiff/grad-check.ts';

test('whole tiny model: weight gradients match central differences (float64, worst rel err <= 1e-4)', async () => {
  const c = presetConfig('tiny', 24);
  const specs = parameterSpecs(c);
  const weights = initWeights(specs, 3, c.text.layers);
  const np = numPatches(c);
  // Two rows of different lengths, so the padding mask is part of what is checked.
  const batch = trainingBatch({
    numPatches: np,
    rows: [
      [1, 5, 9, 3, 7, 2],
      [4, 4, 8, 2],
    ],
    padId: 0,
  });
  const S = np + batch.text;
  const feeds: Record<string, CheckFeed> = {
    patches: { dtype: 'float64', data: seededUniform(2 * np * patchDim(c), 11), dims: [2, np, patchDim(c)] },
    input_ids: { dtype: 'int64', data: batch.inputIds, dims: [2, batch.text] },
    targets: { dtype: 'int64', data: batch.targets, dims: [2, batch.text] },
    position_ids: { dtype: 'int64', data: batch.positionIds, dims: [2, S] },
    attention_bias: { dtype: 'float64', data: Float64Array.from(batch.attentionBias), dims: [2, 1, S, S] },
  };
  for (const s of specs) {
    // Weights far from their initial values (gains ≠ 1, biases ≠ 0, larger matrices) so that
    // every path carries a signal the check can see.
    const w = weights.get(s.name)!;
    const data = Float64Array.from(w, (v, i) => (s.init === 'ones' ? 1 + 0.3 * Math.sin(i) : s.init === 'zeros' ? 0.1 * Math.cos(i) : v * 25));
    feeds[s.name] = { dtype: 'float64', data, dims: s.shape };
  }
  const r = await gradCheck(
    (g) => {
      const f = buildForwardOn(g, c);
      return { output: f.logprobs, wrt: f.params };
    },
    feeds,
    { samplesPerInput: 8, step: 1e-4 },
  );
  assert.ok(r.checked >= specs.length * 2, `checked ${r.checked}`);
  assert.ok(r.maxRelError <= 1e-4, `worst ${r.maxRelError} at ${JSON.stringify(r.worst)}`);
  console.log(
    `whole-model gradient check: ${r.checked} elements over ${specs.length} tensors, worst relative error ${r.maxRelError.toExponential(2)} at ${JSON.stringify(r.worst)}`,
  );
});
