// Experiment files: rows resolve to complete trainer configs with the shared budget, identical
// configs are planned as one run, `extends` merges, and mistakes fail before any training.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chartPaths, configKey, parseExperimentConfig, planRuns, readExperimentConfig, resolveRowConfig } from '../../src/experiment/experiment-config.ts';
import { GRPO_DEFAULTS } from '../../src/training/grpo/grpo-config.ts';

function doc(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    out: 'runs/exp',
    report: 'reports/exp.md',
    sft_init: 'models/sft',
    validation: ['v.jsonl'],
    eval_samples: 50,
    reward_weights: { accuracy: 1, format: 0.2, semantic: 0.5, length: 0.3 },
    base: { preset: 'tiny', init: 'sft', max_steps: 12, prompts_per_step: 4, num_generations: 3, seed: 9, reward_funcs: ['accuracy', 'format', 'semantic'] },
    rows: [
      { id: 'sft', kind: 'sft', label: 'SFT' },
      { id: 'ref', label: 'reference', overrides: {} },
      { id: 'ecr', label: 'ECR', overrides: { reward_funcs: ['accuracy', 'format', 'semantic', 'length'], length_mode: 'ecr' } },
      { id: 'scratch', label: 'scratch', overrides: { init: 'scratch' } },
      { id: 'ref-again', label: 'the reference, spelled out', overrides: { loss_type: 'dr_grpo', scale_rewards: 'none' } },
    ],
    factors: [{ id: 'c', title: 'length', rows: ['ref', 'ecr'], claims: [{ better: 'ref', worse: 'ecr' }] }],
    ...over,
  };
}

test('rows resolve to full configs sharing the budget; reward weights follow reward_funcs', () => {
  const cfg = parseExperimentConfig(doc(), 'x');
  const ecr = resolveRowConfig(cfg, cfg.rows.find((r) => r.id === 'ecr')!);
  assert.deepEqual(ecr.reward_funcs, ['accuracy', 'format', 'semantic', 'length']);
  assert.deepEqual(ecr.reward_weights, [1, 0.2, 0.5, 0.3]);
  assert.equal(ecr.length_mode, 'ecr');
  assert.equal(ecr.init, 'models/sft', "`init: sft` names the experiment's SFT package");
  assert.equal(ecr.package_dir, '', 'experiment rows never write a package');
  assert.deepEqual(ecr.validation, ['v.jsonl']);
  assert.equal(ecr.eval_samples, 50);
  for (const k of ['max_steps', 'prompts_per_step', 'num_generations', 'seed'] as const) assert.equal(ecr[k], cfg.base[k]);
  assert.equal(resolveRowConfig(cfg, cfg.rows.find((r) => r.id === 'scratch')!).init, 'scratch');
  assert.equal(cfg.base.learning_rate, GRPO_DEFAULTS.learning_rate, 'unset knobs keep the trainer defaults');
});

test('identical configs are one run, in <out>/<first row id>', () => {
  const runs = planRuns(parseExperimentConfig(doc(), 'x'));
  assert.deepEqual(
    runs.map((r) => r.rows),
    [['ref', 'ref-again'], ['ecr'], ['scratch']],
  );
  assert.deepEqual(
    runs.map((r) => r.config.out),
    [join('runs/exp', 'ref'), join('runs/exp', 'ecr'), join('runs/exp', 'scratch')],
  );
  assert.notEqual(runs[0].configKey, runs[1].configKey);
  // The key ignores `out` and key order, and changes with any knob.
  const c = runs[0].config;
  assert.equal(configKey({ ...c, out: 'elsewhere' }), configKey(c));
  assert.notEqual(configKey({ ...c, learning_rate: c.learning_rate * 2 }), configKey(c));
  assert.notEqual(configKey(c, 'other init package'), configKey(c));
});

test('mistakes fail when the file is read', () => {
  assert.throws(() => parseExperimentConfig(doc({ extra: 1 }), 'x'), /unknown key "extra"/);
  assert.throws(() => parseExperimentConfig(doc({ base: { max_step: 3 } }), 'x'), /unknown key "max_step"/);
  assert.throws(() => parseExperimentConfig(doc({ base: { out: 'x' } }), 'x'), /base\.out is set by the experiment/);
  const bad = (row: Record<string, unknown>) => doc({ rows: [{ id: 'sft', kind: 'sft', label: 'SFT' }, row], factors: [] });
  assert.throws(() => parseExperimentConfig(bad({ id: 'r', label: 'r', overrides: { max_steps: '3' } }), 'x'), /"max_steps" must be number/);
  assert.throws(() => parseExperimentConfig(bad({ id: 'r', label: 'r', overrides: { loss_type: 'ppo' } }), 'x'), /loss_type/);
  assert.throws(() => parseExperimentConfig(bad({ id: 'R 1', label: 'r' }), 'x'), /lower-case/);
  assert.throws(() => parseExperimentConfig(bad({ id: 'r', label: 'r', overrides: { package_dir: 'models/x' } }), 'x'), /set by the experiment/);
  assert.throws(() => parseExperimentConfig(doc({ factors: [{ id: 'f', title: 'f', rows: ['nope'] }] }), 'x'), /unknown row "nope"/);
  assert.throws(() => parseExperimentConfig(doc({ reward_weights: { speed: 1 } }), 'x'), /unknown reward "speed"/);
  assert.throws(
    () =>
      parseExperimentConfig(
        doc({
          rows: [
            { id: 'a', label: 'a' },
            { id: 'a', label: 'b' },
          ],
          factors: [],
        }),
        'x',
      ),
    /appears twice/,
  );
  assert.throws(() => parseExperimentConfig(doc({ report: 'reports/x.html' }), 'x'), /\.md/);
});

test('extends: the child overrides the parent, base key by key; chart paths sit next to the report', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'exp-config-'));
  try {
    await writeFile(join(dir, 'parent.json'), JSON.stringify(doc()));
    await writeFile(join(dir, 'child.yaml'), 'extends: parent.json\nout: runs/smoke\nbase:\n  max_steps: 2\n');
    const cfg = await readExperimentConfig(join(dir, 'child.yaml'));
    assert.equal(cfg.out, 'runs/smoke');
    assert.equal(cfg.base.max_steps, 2);
    assert.equal(cfg.base.seed, 9, "the parent's other base keys survive");
    assert.equal(cfg.rows.length, 5);
    await writeFile(join(dir, 'loop.yaml'), 'extends: loop.yaml\n');
    await assert.rejects(readExperimentConfig(join(dir, 'loop.yaml')), /loops back/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.deepEqual(chartPaths('reports/experiment.md'), {
    reward: 'reports/experiment-reward.svg',
    accuracy: 'reports/experiment-accuracy.svg',
    length: 'reports/experiment-length.svg',
  });
});

test('the committed experiment files parse, and the paper run covers every factor of the study', async () => {
  const paper = await readExperimentConfig('experiments/paper.yaml');
  const smoke = await readExperimentConfig('experiments/smoke.yaml');
  assert.deepEqual(
    smoke.rows.map((r) => r.id),
    paper.rows.map((r) => r.id),
  );
  const runs = planRuns(paper);
  const has = (pred: (c: (typeof runs)[number]['config']) => boolean) => runs.some((r) => pred(r.config));
  assert.ok(has((c) => c.init === 'scratch') && has((c) => c.init === paper.sft_init), '(a) init');
  assert.ok(has((c) => c.reward_funcs.includes('semantic')) && has((c) => !c.reward_funcs.includes('semantic')), '(b) semantic');
  assert.ok(
    has((c) => !c.reward_funcs.includes('length')) &&
      has((c) => c.reward_funcs.includes('length') && c.length_mode === 'ecr') &&
      has((c) => c.reward_funcs.includes('length') && c.length_mode === 'cwr'),
    '(c) length',
  );
  for (const lt of ['grpo', 'dr_grpo'])
    for (const sr of ['group', 'none'])
      assert.ok(
        has((c) => c.loss_type === lt && c.scale_rewards === sr),
        `(d) ${lt}/${sr}`,
      );
  assert.ok(
    paper.rows.some((r) => r.kind === 'sft'),
    'SFT baseline',
  );
  for (const r of runs)
    for (const k of ['max_steps', 'prompts_per_step', 'num_generations', 'seed'] as const) assert.equal(r.config[k], paper.base[k], `${r.id}: ${k}`);
});
