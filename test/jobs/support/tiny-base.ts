// A real base model for fine-tune tests: a few SFT steps of the tiny preset on the fixture cases,
// written as a model package into `modelsDir` (a couple of seconds).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SFT_DEFAULTS } from '../../../src/training/sft/sft-config.ts';
import { trainSft } from '../../../src/training/sft/sft-trainer.ts';

export const FIXTURE_JSONL = ['test/fixtures/vqa/vqa-rad.jsonl', 'test/fixtures/vqa/slake.jsonl'];

export async function writeTinyBase(modelsDir: string, id = 'tiny-base'): Promise<string> {
  const run = await mkdtemp(join(tmpdir(), 'tiny-base-run-'));
  try {
    await trainSft(
      {
        ...SFT_DEFAULTS,
        preset: 'tiny',
        train: FIXTURE_JSONL,
        validation: [],
        epochs: 2,
        batch_size: 8,
        learning_rate: 3e-3,
        warmup: 2,
        checkpoint_every: 1000,
        max_steps: 6,
        out: run,
        package_dir: join(modelsDir, id),
        threads: 1,
      },
      { quiet: true },
    );
  } finally {
    await rm(run, { recursive: true, force: true });
  }
  return join(modelsDir, id);
}
