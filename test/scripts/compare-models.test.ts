// `npm run compare` end to end on the shipped packages and the real fixture cases: a model against
// itself agrees on every case, and the JSON line carries the per-dataset comparison.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

test('compare-models: a package against itself disagrees nowhere (p = 1), per dataset and overall', async () => {
  const { stdout } = await run(
    process.execPath,
    [
      '--import',
      'tsx',
      'scripts/compare-models.ts',
      '--a',
      'clinvqa-sft',
      '--b',
      'models/clinvqa-sft',
      '--data',
      'test/fixtures/vqa/vqa-rad.jsonl',
      '--data',
      'test/fixtures/vqa/slake.jsonl',
      '--json',
    ],
    { timeout: 120_000 },
  );
  const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<
    string,
    { n: number; accuracy_a: number; accuracy_b: number; only_a: number; only_b: number; p_value: number }
  >;
  assert.deepEqual(Object.keys(summary).sort(), ['all', 'slake', 'vqa-rad']);
  assert.equal(summary.all.n, summary.slake.n + summary['vqa-rad'].n);
  for (const s of Object.values(summary)) {
    assert.equal(s.only_a, 0);
    assert.equal(s.only_b, 0);
    assert.equal(s.p_value, 1);
    assert.equal(s.accuracy_a, s.accuracy_b);
    assert.ok(s.accuracy_a > 0 && s.accuracy_a < 1, `accuracy ${s.accuracy_a}: a trained model on real cases is neither always right nor always wrong`);
  }
});
