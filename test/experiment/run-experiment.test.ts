// The smoke experiment end to end (experiments/smoke.yaml: every row and factor of the paper run,
// tiny preset, 2 GRPO steps each, fixture cases, an SFT init trained on the spot) into a temp dir:
// the report has every row with numbers, the SVG charts are well-formed with one curve per run;
// rerunning reuses finished rows, an interrupted row resumes, and a changed config is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chartPaths, planRuns, readExperimentConfig } from '../../src/experiment/experiment-config.ts';
import type { Metrics } from '../../src/experiment/experiment-result.ts';
import { runExperiment, writeExperimentReport } from '../../src/experiment/run-experiment.ts';
import { wellFormedXml } from './xml-well-formed.ts';

/** The metrics without the timings, which differ from run to run. */
function quality(m: Metrics | null): Metrics | null {
  if (!m) return m;
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [k, Object.fromEntries(Object.entries(v).filter(([name]) => !/_ms/.test(name)))]));
}

test('smoke experiment: every row in the report, well-formed charts, reuse, resume and stale-run refusal', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'experiment-'));
  try {
    const smoke = await readExperimentConfig('experiments/smoke.yaml');
    const cfg = { ...smoke, out: join(dir, 'runs'), report: join(dir, 'reports', 'experiment.md'), sft_init: join(dir, 'tiny-sft') };
    const first = await runExperiment(cfg, { configPath: 'experiments/smoke.yaml', quiet: true });
    assert.ok(first.complete);
    const runs = planRuns(cfg);
    for (const r of first.rows) {
      assert.equal(typeof r.metrics?.all?.accuracy, 'number', r.row.id);
      assert.equal(r.metrics!.all.n, cfg.eval_samples, `${r.row.id}: scored on the capped validation set`);
      assert.equal(r.reused, false);
      if (r.row.kind === 'grpo')
        assert.deepEqual(
          r.curves.map((p) => p.step),
          [1, 2],
          r.row.id,
        );
    }

    const written = await writeExperimentReport(first);
    const md = await readFile(cfg.report, 'utf8');
    const tableRows = md.split('\n').filter((l) => /^\| `[a-z0-9-]+` \| /.test(l));
    for (const row of cfg.rows) {
      const line = tableRows.find((l) => l.startsWith(`| \`${row.id}\` | ${row.label}`));
      assert.ok(line, `row ${row.id} missing from the results table`);
      assert.match(line!, /\*\*\d+\.\d\*\*/, `row ${row.id} has no accuracy`);
    }
    assert.ok(!md.includes('Partial run'));
    const charts = chartPaths(cfg.report);
    assert.deepEqual(written.sort(), [cfg.report, charts.reward, charts.accuracy, charts.length].sort());
    for (const p of [charts.reward, charts.accuracy, charts.length]) {
      const svg = await readFile(p, 'utf8');
      const names = wellFormedXml(svg);
      assert.equal(names[0], 'svg', p);
      assert.equal(names.filter((n) => n === 'polyline').length, runs.length, `${p}: one curve per GRPO run`);
      assert.ok(!/NaN|Infinity/.test(svg), p);
    }

    // Rerun: everything is reused, nothing retrained.
    const again = await runExperiment(cfg, { configPath: 'experiments/smoke.yaml', quiet: true });
    assert.ok(
      again.rows.every((r) => r.reused),
      'finished rows are reused',
    );
    assert.deepEqual(
      again.rows.map((r) => r.metrics),
      first.rows.map((r) => r.metrics),
    );

    // An interrupted row (no result yet, checkpoints there) resumes from its last checkpoint.
    await rm(join(cfg.out, runs[1].id, 'result.json'));
    const resumed = await runExperiment(cfg, { configPath: 'experiments/smoke.yaml', quiet: true });
    const row = resumed.rows.find((r) => r.row.id === runs[1].id)!;
    assert.equal(row.reused, false);
    assert.equal(row.resumedFromStep, 2);
    assert.deepEqual(quality(row.metrics), quality(first.rows.find((r) => r.row.id === runs[1].id)!.metrics), 'same weights, same greedy answers');

    // A run directory left by a different config is refused, not mixed in.
    await assert.rejects(
      runExperiment({ ...cfg, base: { ...cfg.base, learning_rate: cfg.base.learning_rate * 3 } }, { configPath: 'x', quiet: true }),
      /holds a run of a different config/,
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
