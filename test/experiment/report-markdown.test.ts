// The experiment report: every row in the table (finished or not), the paper's numbers beside
// ours, and verdicts that follow the numbers (checked against hand-computed z-tests).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseExperimentConfig } from '../../src/experiment/experiment-config.ts';
import { cell, checkClaim, pct, renderReport, trainingObservations } from '../../src/experiment/report-markdown.ts';
import type { ExperimentResult, Metrics, RowResult } from '../../src/experiment/experiment-result.ts';

function metrics(accuracy: number, n = 200): Metrics {
  const m = {
    n,
    accuracy,
    closed_accuracy: accuracy,
    open_accuracy: null,
    format_rate: 1,
    grounding_rate: 0.5,
    yes_bias: -0.042,
    mean_completion_length: 21.25,
  };
  return { all: m, 'vqa-rad': { ...m, n: n / 2 }, slake: { ...m, n: n / 2 } };
}

const CONFIG = parseExperimentConfig(
  {
    title: 'Study | test',
    out: 'runs/x',
    report: 'reports/x.md',
    sft_init: 'models/sft',
    validation: ['v.jsonl'],
    eval_samples: 0,
    reward_weights: { accuracy: 1, format: 0.2, semantic: 0.5 },
    base: { preset: 'tiny', init: 'sft', max_steps: 10, prompts_per_step: 4, num_generations: 4, seed: 7 },
    rows: [
      { id: 'sft', kind: 'sft', label: 'SFT baseline', paper: { accuracy: 52, label: 'best SFT' } },
      { id: 'ref', label: 'Dr. GRPO | reference', overrides: {}, paper: { accuracy: 61.1, label: 'Dr. GRPO' } },
      { id: 'grpo', label: 'GRPO', overrides: { loss_type: 'grpo', scale_rewards: 'group' } },
      { id: 'late', label: 'not finished', overrides: { init: 'scratch' } },
    ],
    factors: [
      {
        id: 'rl',
        title: 'GRPO vs SFT',
        finding: 'GRPO beats SFT.',
        rows: ['sft', 'ref', 'grpo'],
        claims: [
          { better: 'ref', worse: 'sft' },
          { better: 'grpo', worse: 'sft' },
          { better: 'late', worse: 'sft' },
        ],
      },
    ],
  },
  'test',
);

function row(id: string, m: Metrics | null, runDir = `runs/x/${id}`): RowResult {
  const r = CONFIG.rows.find((x) => x.id === id)!;
  return {
    row: r,
    runDir,
    metrics: m,
    steps: m ? 10 : 3,
    trainSeconds: 12.3,
    wallSeconds: m ? 40 : null,
    resumedFromStep: 0,
    reused: id === 'sft',
    finishedAt: m ? `2026-01-01T00:0${CONFIG.rows.findIndex((x) => x.id === id)}:00.000Z` : null,
    curves: [],
  };
}

function result(rows: RowResult[]): ExperimentResult {
  return {
    config: CONFIG,
    configPath: 'experiments/x.yaml',
    command: 'npm run experiment -- --config experiments/x.yaml',
    startedAt: '2026-01-01T00:00:00.000Z',
    finishedAt: '2026-01-01T00:30:00.000Z',
    machine: { cpu: 'Test CPU', cores: 2, memoryGiB: 8, node: 'v20', platform: 'linux', loadAverageAtStart: 1.5 },
    sft: { dir: 'models/sft', id: 'sft', manifestSha256: 'ab'.repeat(32) },
    data: {
      train: ['t.jsonl'],
      trainCases: 1000,
      trainSha256: 'cd'.repeat(32),
      validation: ['v.jsonl'],
      evalCases: 200,
      evalPerDataset: { 'vqa-rad': 100, slake: 100 },
    },
    rows,
    complete: rows.every((r) => r.metrics !== null),
  };
}

test('claims: verdicts follow a two-proportion z-test on overall accuracy', () => {
  const claim = { better: 'a', worse: 'b' };
  // 120/200 vs 100/200: pooled p = 0.55, se = sqrt(.55*.45*(2/200)) = 0.04975, z = 0.1/0.04975 = 2.010, p = 0.0444.
  const sig = checkClaim(claim, metrics(0.6), metrics(0.5));
  assert.equal(sig.verdict, 'reproduces');
  assert.ok(Math.abs(sig.diffPoints! - 10) < 1e-9);
  assert.ok(Math.abs(sig.pValue! - 0.0444) < 1e-3, String(sig.pValue));
  // 110/200 vs 100/200: z = 1.0, p = 0.317.
  assert.equal(checkClaim(claim, metrics(0.55), metrics(0.5)).verdict, 'same direction, not significant');
  assert.equal(checkClaim(claim, metrics(0.5), metrics(0.55)).verdict, 'opposite direction, not significant');
  assert.equal(checkClaim(claim, metrics(0.5), metrics(0.6)).verdict, 'contradicted');
  assert.equal(checkClaim(claim, metrics(0.5), metrics(0.5)).verdict, 'no difference');
  assert.equal(checkClaim(claim, null, metrics(0.5)).verdict, 'not run');
});

test('the report has every row, the budget, the paper column and a partial-run notice', () => {
  const md = renderReport(result([row('sft', metrics(0.5)), row('ref', metrics(0.6)), row('grpo', metrics(0.55)), row('late', null)]), {
    reward: 'x-reward.svg',
    accuracy: 'x-accuracy.svg',
    length: 'x-length.svg',
  });
  const table = md.split('\n').filter((l) => l.startsWith('| `'));
  for (const id of ['sft', 'ref', 'grpo', 'late'])
    assert.ok(
      table.some((l) => l.startsWith(`| \`${id}\` |`)),
      `row ${id} missing`,
    );
  const ref = table.find((l) => l.startsWith('| `ref` |'))!;
  assert.ok(ref.includes('Dr. GRPO \\| reference'), 'pipes in labels are escaped');
  assert.ok(ref.includes('**60.0**') && ref.includes('61.1 (Dr. GRPO)') && ref.includes('−4.2') && ref.includes('21.3'));
  // Same number of cells in the header and in every row (a stray pipe would break the table).
  const header = md.split('\n').find((l) => l.startsWith('| row | what |'))!;
  const cells = (l: string) => l.replace(/\\\|/g, '').split('|').length;
  for (const l of table.filter((l) => l.includes('**') || l.includes('not run'))) assert.equal(cells(l), cells(header), l);
  assert.match(md, /Partial run.*`late`/);
  assert.match(md, /10 steps × 4 prompts × 4 generations \(160 sampled completions\)/);
  assert.match(md, /seed 7/);
  assert.match(md, /produced between 2026-01-01T00:00:00\.000Z and 2026-01-01T00:02:00\.000Z \(1 of 4 rows reused/);
  assert.match(md, /2 × Test CPU/);
  assert.match(md, /`ref` > `sft`: \+10\.0 points, p = 0\.04\d → \*\*reproduces\*\*/);
  assert.match(md, /`late` > `sft`: not run → \*\*not run\*\*/);
  assert.match(md, /!\[combined reward per step\]\(x-reward\.svg\)/);
  assert.match(md, /!\[mean completion length per step\]\(x-length\.svg\)/);
  assert.match(md, /^# Study \| test$/m);
});

test("rows sharing a run say so, a complete run has no partial notice, and each run's training signal is summarised once", () => {
  const ref = row('ref', metrics(0.6));
  // 8 steps: first quarter = steps 1–2, last quarter = steps 7–8.
  ref.curves = [1, 2, 3, 4, 5, 6, 7, 8].map((s) => ({ step: s, reward: s / 10, accuracyReward: s / 20, completionLength: 20 + s, kl: s / 1000, stepMs: 1000 }));
  const shared = { ...row('grpo', metrics(0.6), 'runs/x/ref'), curves: ref.curves };
  const md = renderReport(result([row('sft', metrics(0.5)), ref, shared, row('late', metrics(0.4))]), { reward: 'r.svg', accuracy: 'a.svg', length: 'l.svg' });
  assert.ok(!md.includes('Partial run'));
  assert.match(md, /\| `grpo` \| GRPO \(same run as `ref`\)/);
  assert.ok(md.includes('| `ref` | 0.075 → 0.375 | 0.150 → 0.750 | 21.5 → 27.5 | 0.0080 |'), md);
  assert.ok(!md.includes('| `grpo` | 0.075'), 'a shared run is summarised once');
});

test('formatting helpers', () => {
  assert.equal(pct(0.6111), '61.1');
  assert.equal(pct(null), '–');
  assert.equal(cell('a|b\nc'), 'a\\|b c');
});

test('observations are stated only when the data shows them', () => {
  const curve = (acc: (s: number) => number) =>
    [1, 2, 3, 4, 5, 6, 7, 8].map((s) => ({ step: s, reward: acc(s), accuracyReward: acc(s), completionLength: 20, kl: 0, stepMs: 1 }));
  const silent = { ...row('late', metrics(0)), curves: curve((s) => (s === 3 ? 0.004 : 0)) };
  const ref = { ...row('ref', metrics(0.45)), curves: curve(() => 0.5) };
  const grpo = { ...row('grpo', metrics(0.6)), curves: curve(() => 0.5) };
  const text = trainingObservations(result([row('sft', metrics(0.5)), ref, grpo, silent])).join('\n');
  assert.match(text, /`late` \(highest step mean reward 0\.004\) almost never sampled a completion that earned a reward/);
  assert.match(text, /1 of 2 GRPO rows that received a reward signal scored below the SFT baseline \(50\.0%\)/);
  assert.ok(!text.includes('likely reason'), 'no explanation of a decline that only half the rows show');
  const worse = trainingObservations(
    result([row('sft', metrics(0.5)), ref, { ...grpo, metrics: metrics(0.49) }, { ...row('late', metrics(0.3)), curves: curve(() => 0.2) }]),
  ).join('\n');
  assert.match(worse, /3 of 3 GRPO rows .* likely reason/);
  assert.ok(!worse.includes('never sampled'), 'runs with real rewards are not called silent');
  assert.deepEqual(trainingObservations(result([row('sft', metrics(0.5))])), []);
});
