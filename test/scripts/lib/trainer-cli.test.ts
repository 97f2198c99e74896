// The trainers' shared command line: the config file overlays the defaults, unknown keys are refused,
// and the summary is one JSON line.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runTrainerCli } from '../../../scripts/lib/trainer-cli.ts';

const DEFAULTS = { epochs: 10, learning_rate: 0.001, out: 'runs/x' };

test('a config file overlays the defaults, the trainer gets the result, one JSON summary line is printed', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trainer-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'c.yaml');
  await writeFile(file, 'epochs: 2\n');
  const printed: string[] = [];
  t.mock.method(console, 'log', (line: string) => printed.push(line));
  let got: typeof DEFAULTS | undefined;
  await runTrainerCli(
    {
      script: 'train:x',
      defaults: DEFAULTS,
      train: async (c) => {
        got = c;
        return { steps: c.epochs * 3 };
      },
      summary: (r) => ({ steps: r.steps }),
    },
    ['--config', file],
  );
  assert.deepEqual(got, { ...DEFAULTS, epochs: 2 });
  assert.deepEqual(
    printed.map((l) => JSON.parse(l)),
    [{ steps: 6 }],
  );
});

test('an unknown key in the config file is refused before training starts', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'trainer-cli-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'c.yaml');
  await writeFile(file, 'epochz: 2\n');
  let trained = false;
  await assert.rejects(
    runTrainerCli(
      {
        script: 'train:x',
        defaults: DEFAULTS,
        train: async () => {
          trained = true;
        },
        summary: () => ({}),
      },
      ['--config', file],
    ),
    /unknown key "epochz"/,
  );
  assert.equal(trained, false);
});
