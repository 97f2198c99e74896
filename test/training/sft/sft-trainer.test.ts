// SFT on the tiny preset and the real fixture cases: the loss falls, and a run stopped at a
// checkpoint and resumed takes exactly the steps an unstopped run takes and reports the whole run's time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SFT_DEFAULTS, type SftConfig } from '../../../src/training/sft/sft-config.ts';
import { trainSft } from '../../../src/training/sft/sft-trainer.ts';
import { verifyModelPackage } from '../../../src/registry/model-package.ts';
import { latestCheckpoint, runStartTime, type TrainerState } from '../../../src/training/checkpoint.ts';

const FIXTURES = ['test/fixtures/vqa/vqa-rad.jsonl', 'test/fixtures/vqa/slake.jsonl'];

function config(dir: string, over: Partial<SftConfig> = {}): SftConfig {
  return {
    ...SFT_DEFAULTS,
    preset: 'tiny',
    train: FIXTURES,
    validation: [],
    epochs: 4,
    batch_size: 8,
    learning_rate: 3e-3,
    warmup: 2,
    checkpoint_every: 100,
    out: join(dir, 'run'),
    ...over,
  };
}

test('SFT lowers the loss and writes a loadable, evaluated package', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sft-'));
  try {
    const r = await trainSft(config(dir, { validation: ['test/fixtures/vqa/slake.jsonl'], package_dir: join(dir, 'models', 'tiny-sft') }), { quiet: true });
    assert.equal(r.steps, 24);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.ok(mean(r.losses.slice(-4)) < mean(r.losses.slice(0, 4)) - 0.5, `losses ${r.losses.map((l) => l.toFixed(2)).join(' ')}`);
    const manifest = await verifyModelPackage(join(dir, 'models', 'tiny-sft'));
    assert.equal(manifest.method, 'sft');
    assert.equal(manifest.preset, 'tiny');
    assert.equal(typeof (manifest.eval as { validation: { all: { n: number } } }).validation.all.n, 'number');
    assert.match(manifest.dataset.sha256, /^[0-9a-f]{64}$/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('SFT resumed from a checkpoint takes the same next steps as an unstopped run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sft-'));
  try {
    const straight = await trainSft(config(join(dir, 'a'), { max_steps: 10 }), { quiet: true });
    const part = await trainSft(config(join(dir, 'b'), { max_steps: 10 }), { quiet: true, stopAfterStep: 7 });
    assert.equal(part.steps, 7);
    // The checkpoint carries the first process's training time, and the resumed run counts it.
    const firstSeconds = (await latestCheckpoint(join(dir, 'b', 'run')))!.state.trainingSeconds!;
    assert.ok(firstSeconds > 0, `trainingSeconds ${firstSeconds}`);
    const resumed = await trainSft(config(join(dir, 'b'), { max_steps: 10 }), { quiet: true });
    assert.ok(resumed.wallSeconds >= firstSeconds, `resumed run reports ${resumed.wallSeconds} s, the first process alone took ${firstSeconds} s`);
    assert.deepEqual(resumed.losses, straight.losses.slice(7));
    for (const [name, w] of straight.weights) assert.deepEqual(resumed.weights.get(name), w, name);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a resumed run starts its clock as far back as its checkpoint has trained', () => {
  const state = { trainingSeconds: 125.5 } as TrainerState;
  assert.equal(runStartTime(10_000_000, { state }), 10_000_000 - 125_500);
  assert.equal(runStartTime(10_000_000, null), 10_000_000);
  // Checkpoints written before the time was recorded count as no time.
  assert.equal(runStartTime(10_000_000, { state: { ...state, trainingSeconds: undefined } }), 10_000_000);
});

test('SFT refuses a package_dir that already exists before it trains a single step', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sft-'));
  try {
    const taken = join(dir, 'models', 'tiny-sft');
    await mkdir(taken, { recursive: true });
    await assert.rejects(trainSft(config(dir, { package_dir: taken }), { quiet: true }), /already exists and packages are immutable/);
    assert.equal(await latestCheckpoint(join(dir, 'run')), null, 'no checkpoint should have been written');
    assert.deepEqual(await readdir(taken), [], 'the existing directory is left as it was');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
