// nanoGPT/llm.c style: fixed seed, fixed batch, 10 AdamW steps of the tiny preset through the
// ONNX training graph → the recorded loss curve (tolerance 1e-3), and the loss must fall.
// Re-record after an intended change with UPDATE_GOLDEN=1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { numPatches } from '../../../src/engine/model/config.ts';
import { initWeights } from '../../../src/engine/model/params.ts';
import { trainingBatch } from '../../../src/engine/model/batch-inputs.ts';
import { TrainingSession } from '../../../src/engine/train/training-session.ts';
import { AdamW } from '../../../src/engine/optim/adamw.ts';
import { clipGradNorm } from '../../../src/engine/optim/grad-clip.ts';
import { warmupCosineSchedule } from '../../../src/engine/optim/lr-schedule.ts';
import { sftLoss } from '../../../src/training/sft/sft-loss.ts';
import { presetConfig } from '../../../src/engine/model/config.ts';
import { parameterSpecs } from '../../../src/engine/model/vlm.ts';
import { randomPatches } from '../../support/tiny-model.ts';

test('10 AdamW steps of the tiny preset follow the recorded loss curve and the loss falls', async () => {
  const c = presetConfig('tiny', 24);
  const specs = parameterSpecs(c);
  const weights = initWeights(specs, 1234, c.text.layers);
  const rows = [
    [3, 9, 14, 2, 21, 7, 5],
    [8, 1, 17, 4, 5],
    [12, 13, 15, 16, 5, 6, 6],
  ];
  const batch = trainingBatch({ numPatches: numPatches(c), rows, padId: 6 });
  const patches = randomPatches(c, rows.length, 77);
  const session = await TrainingSession.create(c, { withGrads: true });
  const opt = new AdamW(weights, { weightDecay: 0.1, noWeightDecay: (n) => !specs.find((s) => s.name === n)!.decay });
  const lr = warmupCosineSchedule({ peakLr: 3e-3, warmupSteps: 2, totalSteps: 10, minRatio: 0.1 });
  const losses: number[] = [];
  for (let step = 1; step <= 10; step++) {
    const { logprobs } = await session.forward(weights, patches, batch);
    const { loss, gradLogprobs } = sftLoss(logprobs, batch.targetMask);
    const { grads } = await session.backward(weights, patches, batch, gradLogprobs);
    clipGradNorm(grads, 1.0);
    opt.step(grads, lr(step));
    losses.push(loss);
  }
  const file = new URL('../../golden/tiny-sft-loss-curve.json', import.meta.url);
  if (process.env.UPDATE_GOLDEN === '1') await writeFile(file, `${JSON.stringify({ losses }, null, 1)}\n`);
  const golden = JSON.parse(await readFile(file, 'utf8')) as { losses: number[] };
  assert.equal(losses.length, golden.losses.length);
  losses.forEach((l, i) => assert.ok(Math.abs(l - golden.losses[i]) <= 1e-3, `step ${i + 1}: ${l} vs recorded ${golden.losses[i]}`));
  assert.ok(losses[9] < losses[0] - 0.1, `loss did not fall: ${losses[0]} → ${losses[9]}`);
  console.log(`loss curve: ${losses.map((l) => l.toFixed(4)).join(' ')}`);
});
