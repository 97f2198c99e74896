// The experiment's Markdown report: what was run (command, budget, data, machine, dates), one
// table row per experiment row, the paper's numbers beside ours, each factor's comparisons with a
// significance test, the charts, and a verdict per finding derived from the numbers, never typed in.
import { twoProportionZTest, wilsonInterval } from '../eval/proportion-stats.ts';
import type { Claim } from './experiment-config.ts';
import type { ExperimentResult, Metrics, RowResult } from './experiment-result.ts';
import type { StepPoint } from './run-curves.ts';

export type Verdict = 'reproduces' | 'same direction, not significant' | 'no difference' | 'opposite direction, not significant' | 'contradicted' | 'not run';

export interface ClaimCheck {
  claim: Claim;
  /** better − worse, in accuracy points. */
  diffPoints: number | null;
  pValue: number | null;
  verdict: Verdict;
}

const ALPHA = 0.05;

function successes(m: Record<string, number | null>): { s: number; n: number } | null {
  const n = m.n;
  const acc = m.accuracy;
  if (typeof n !== 'number' || typeof acc !== 'number' || n === 0) return null;
  return { s: Math.round(acc * n), n };
}

/** Checks "better beats worse" on overall accuracy with a two-sided two-proportion z-test. */
export function checkClaim(claim: Claim, better: Metrics | null, worse: Metrics | null): ClaimCheck {
  const b = better ? successes(better.all ?? {}) : null;
  const w = worse ? successes(worse.all ?? {}) : null;
  if (!b || !w) return { claim, diffPoints: null, pValue: null, verdict: 'not run' };
  const diffPoints = (b.s / b.n - w.s / w.n) * 100;
  const { pValue } = twoProportionZTest(b.s, b.n, w.s, w.n);
  const significant = pValue < ALPHA;
  // Equal counts on equal n: no evidence either way (a difference below one question is rounding).
  const verdict: Verdict =
    Math.abs(diffPoints) < 1e-9
      ? 'no difference'
      : diffPoints > 0
        ? significant
          ? 'reproduces'
          : 'same direction, not significant'
        : significant
          ? 'contradicted'
          : 'opposite direction, not significant';
  return { claim, diffPoints, pValue, verdict };
}

export function pct(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? (v * 100).toFixed(1) : '–';
}

function signedPoints(v: number | null | undefined): string {
  if (typeof v !== 'number' || !Number.isFinite(v)) return '–';
  const p = v * 100;
  return `${p >= 0 ? '+' : '−'}${Math.abs(p).toFixed(1)}`;
}

function num(v: number | null | undefined, digits = 1): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : '–';
}

/** Table cells may not hold a pipe or a line break. */
export function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

function interval(m: Record<string, number | null> | undefined): string {
  const k = m ? successes(m) : null;
  if (!k) return '–';
  const i = wilsonInterval(k.s, k.n);
  return `${(i.lower * 100).toFixed(1)}–${(i.upper * 100).toFixed(1)}`;
}

function resultsTable(result: ExperimentResult): string[] {
  const lines = [
    '| row | what | accuracy (all) | 95% CI | VQA-RAD | SLAKE | closed | open | grounding | yes-bias (pts) | mean length (tokens) | steps | train s | wall s | paper (PMC-VQA) |',
    '|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|',
  ];
  for (const r of result.rows) {
    const m = r.metrics;
    const all = m?.all;
    const shared = result.rows.find((o) => o.runDir === r.runDir && o.row.kind === 'grpo');
    const reuse = r.row.kind === 'grpo' && shared && shared.row.id !== r.row.id ? ` (same run as \`${shared.row.id}\`)` : '';
    lines.push(
      `| \`${r.row.id}\` | ${cell(r.row.label)}${reuse} | ${m ? `**${pct(all?.accuracy)}**` : 'not run'} | ${interval(all)} | ${pct(m?.['vqa-rad']?.accuracy)} | ${pct(m?.slake?.accuracy)} | ${pct(all?.closed_accuracy)} | ${pct(all?.open_accuracy)} | ${pct(all?.grounding_rate)} | ${signedPoints(all?.yes_bias)} | ${num(all?.mean_completion_length)} | ${r.steps} | ${r.row.kind === 'grpo' ? num(r.trainSeconds, 0) : '–'} | ${num(r.wallSeconds, 0)} | ${r.row.paper ? `${r.row.paper.accuracy.toFixed(1)} (${cell(r.row.paper.label)})` : ''} |`,
    );
  }
  return lines;
}

/** Mean of `pick` over the first and the last quarter of a run's steps. */
function firstLast(r: RowResult, pick: (p: StepPoint) => number | null): [number | null, number | null] {
  const vals = r.curves.map(pick).filter((v): v is number => v !== null && Number.isFinite(v));
  if (vals.length === 0) return [null, null];
  const q = Math.max(1, Math.floor(vals.length / 4));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return [mean(vals.slice(0, q)), mean(vals.slice(-q))];
}

/** Did training move anything? Reward and length early vs late, and the final KL, per run. */
function signalTable(result: ExperimentResult): string[] {
  const seen = new Set<string>();
  const runs = result.rows.filter((r) => r.row.kind === 'grpo' && r.curves.length && !seen.has(r.runDir) && seen.add(r.runDir));
  if (!runs.length) return [];
  const lines = [
    '| run | accuracy reward, first → last quarter | combined reward, first → last quarter | completion length, first → last quarter | KL at last step |',
    '|---|--:|--:|--:|--:|',
  ];
  for (const r of runs) {
    const [a0, a1] = firstLast(r, (p) => p.accuracyReward);
    const [c0, c1] = firstLast(r, (p) => p.reward);
    const [l0, l1] = firstLast(r, (p) => p.completionLength);
    const kl = r.curves[r.curves.length - 1].kl;
    lines.push(`| \`${r.row.id}\` | ${num(a0, 3)} → ${num(a1, 3)} | ${num(c0, 3)} → ${num(c1, 3)} | ${num(l0)} → ${num(l1)} | ${num(kl, 4)} |`);
  }
  return lines;
}

/** Statements about the training curves that hold for this run's data (each one is conditional on it). */
export function trainingObservations(result: ExperimentResult): string[] {
  const seen = new Set<string>();
  const runs = result.rows.filter((r) => r.row.kind === 'grpo' && r.curves.length >= 4 && !seen.has(r.runDir) && seen.add(r.runDir));
  const lines: string[] = [];
  // "Silent": no step's mean reward reached 0.05 (e.g. only token-F1 crumbs on random text).
  const maxReward = (r: RowResult) => Math.max(...r.curves.map((p) => p.reward));
  const silent = runs.filter((r) => maxReward(r) < 0.05);
  if (silent.length) {
    lines.push(
      `- ${silent.map((r) => `\`${r.row.id}\` (highest step mean reward ${maxReward(r).toFixed(3)})`).join(', ')} almost never sampled a completion that earned a reward, so nearly every group's rewards were equal, the advantages were about zero and GRPO had next to nothing to learn from: RL cannot start from a policy that never produces a rewarded answer.`,
    );
  }
  // Validation, not the training reward, says whether RL helped: a step's training reward depends on
  // which prompts that step drew.
  const baseline = result.rows.find((r) => r.row.kind === 'sft' && r.metrics)?.metrics?.all?.accuracy;
  const trained = result.rows.filter((r) => r.row.kind === 'grpo' && r.metrics && !silent.some((x) => x.runDir === r.runDir));
  if (typeof baseline === 'number' && trained.length) {
    const below = trained.filter((r) => (r.metrics!.all?.accuracy ?? 0) < baseline);
    lines.push(
      `- ${below.length} of ${trained.length} GRPO rows that received a reward signal scored below the SFT baseline (${pct(baseline)}%) on validation.` +
        (below.length * 2 > trained.length
          ? " At this budget RL mostly moved the policy away from the SFT solution rather than improving it; a likely reason is that with a few prompts per step the policy-gradient estimate is dominated by sampling noise, and AdamW normalises each weight's step, so noise still makes full-size updates."
          : ''),
    );
  }
  if (lines.length) lines.unshift('What the training curves show:', '');
  if (lines.length) lines.push('');
  return lines;
}

function claimLine(c: ClaimCheck): string {
  const d = c.diffPoints === null ? 'not run' : `${c.diffPoints >= 0 ? '+' : '−'}${Math.abs(c.diffPoints).toFixed(1)} points, p = ${c.pValue!.toFixed(3)}`;
  return `\`${c.claim.better}\` > \`${c.claim.worse}\`: ${d} → **${c.verdict}**`;
}

export interface ChartFiles {
  reward: string;
  accuracy: string;
  length: string;
}

export function renderReport(result: ExperimentResult, charts: ChartFiles): string {
  const cfg = result.config;
  const b = cfg.base;
  const byId = new Map(result.rows.map((r) => [r.row.id, r]));
  const out: string[] = [];
  out.push(`# ${cfg.title}`, '');
  out.push(
    'The four factors of arXiv 2505.13973 ("Toward Effective Reinforcement Learning Fine-Tuning for Medical VQA in Vision-Language Models") — ' +
      'initialisation, a medical semantic reward, length rewards (ECR, CWR) and the normalisation bias of GRPO (Dr. GRPO) — ' +
      'rerun on our own small vision-language model and the VQA-RAD + SLAKE validation splits, every GRPO row with the same fixed budget.',
    '',
  );
  if (!result.complete)
    out.push(
      `> **Partial run**: ${result.rows
        .filter((r) => !r.metrics)
        .map((r) => `\`${r.row.id}\``)
        .join(', ')} did not finish; their cells read "not run".`,
      '',
    );

  out.push('## What was run', '');
  out.push(`- Command: \`${result.command}\` (config \`${result.configPath}\`); resumable — rerunning continues unfinished rows and reuses finished ones.`);
  const finished = result.rows
    .map((r) => r.finishedAt)
    .filter((t): t is string => t !== null)
    .sort();
  const reused = result.rows.filter((r) => r.reused).length;
  out.push(
    `- Date: this report was written ${result.finishedAt}${finished.length ? `; the rows' results were produced between ${finished[0]} and ${finished[finished.length - 1]}` : ''}${reused ? ` (${reused} of ${result.rows.length} rows reused from an earlier invocation, with the wall time of the run that produced them)` : ''}.`,
  );
  out.push(
    `- Machine: ${result.machine.cores} × ${result.machine.cpu}, ${result.machine.memoryGiB} GiB, ${result.machine.platform}, Node ${result.machine.node}, ONNX Runtime on CPU; 1-minute load average at start ${result.machine.loadAverageAtStart}.`,
  );
  out.push(
    `- Budget, identical for every GRPO row: preset \`${b.preset}\`, ${b.max_steps} steps × ${b.prompts_per_step} prompts × ${b.num_generations} generations (${b.max_steps * b.prompts_per_step * b.num_generations} sampled completions), max ${b.max_completion_length} completion tokens, temperature ${b.temperature}, β ${b.beta}, ε ${b.epsilon}, learning rate ${b.learning_rate} (warmup ${b.warmup}), seed ${b.seed}.`,
  );
  out.push(
    `- Reward weights: ${
      Object.entries(cfg.reward_weights)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ') || 'all 1'
    }; length reward target ${b.length_target_words} words, cap ${b.length_cap_words} (its mode per row).`,
  );
  out.push(
    `- SFT init and baseline: \`${result.sft.dir}\`${result.sft.manifestSha256 ? ` (manifest sha256 \`${result.sft.manifestSha256.slice(0, 16)}…\`)` : ' (missing)'}.`,
  );
  out.push(
    `- Training data: ${result.data.train.map((p) => `\`${p}\``).join(' + ')} — ${result.data.trainCases} questions, dataset sha256 \`${result.data.trainSha256.slice(0, 16)}…\`.`,
  );
  out.push(
    `- Scored on: ${result.data.validation.map((p) => `\`${p}\``).join(' + ')} — ${result.data.evalCases} questions (${Object.entries(
      result.data.evalPerDataset,
    )
      .map(([d, n]) => `${d} ${n}`)
      .join(', ')}), greedy decoding, the same cases for every row.`,
  );
  out.push('');

  out.push('## Results', '');
  out.push(
    'Accuracy, closed/open and grounding are percentages of the scored questions; yes-bias is the predicted-yes rate minus the gold-yes rate on yes/no questions; mean length is in completion tokens. "train s" sums the logged step times; "wall s" also counts loading, image preprocessing and evaluation. The paper column is the accuracy the paper reports for the closest setting (PMC-VQA, Qwen2-VL-2B), for reference only: different data, model and budget.',
    '',
  );
  out.push(...resultsTable(result), '');

  const checks: ClaimCheck[] = [];
  if (cfg.factors.length) {
    out.push('## Factors', '');
    for (const f of cfg.factors) {
      out.push(`### ${f.title}`, '');
      if (f.finding) out.push(`Paper: ${f.finding}`, '');
      out.push('| row | accuracy | VQA-RAD | SLAKE | grounding | yes-bias (pts) | mean length |', '|---|--:|--:|--:|--:|--:|--:|');
      for (const id of f.rows) {
        const r = byId.get(id)!;
        const a = r.metrics?.all;
        out.push(
          `| \`${id}\` ${cell(r.row.label)} | ${pct(a?.accuracy)} | ${pct(r.metrics?.['vqa-rad']?.accuracy)} | ${pct(r.metrics?.slake?.accuracy)} | ${pct(a?.grounding_rate)} | ${signedPoints(a?.yes_bias)} | ${num(a?.mean_completion_length)} |`,
        );
      }
      out.push('');
      for (const claim of f.claims) {
        const c = checkClaim(claim, byId.get(claim.better)!.metrics, byId.get(claim.worse)!.metrics);
        checks.push(c);
        out.push(`- ${claimLine(c)}`);
      }
      if (f.claims.length) out.push('');
    }
  }

  out.push('## Training curves', '');
  out.push(
    "Per step, from each run's `log.jsonl` (rows that share a run are drawn once). Every run draws the same prompts at the same step (the prompt order follows the seed), so the curves are comparable across runs step by step, but a rise or fall along one curve partly reflects which prompts each step drew. The combined reward is not comparable across rows with different reward functions; the accuracy reward is.",
    '',
  );
  const signal = signalTable(result);
  if (signal.length) out.push(...signal, '');
  out.push(
    `![combined reward per step](${charts.reward})`,
    '',
    `![accuracy reward per step](${charts.accuracy})`,
    '',
    `![mean completion length per step](${charts.length})`,
    '',
  );

  out.push('## Which findings reproduce at our scale', '');
  if (checks.length) {
    out.push(
      `Each finding is checked on overall validation accuracy with a two-sided two-proportion z-test (α = ${ALPHA}); the verdicts below are computed from the table, not written by hand.`,
      '',
    );
    for (const v of [
      'reproduces',
      'same direction, not significant',
      'no difference',
      'opposite direction, not significant',
      'contradicted',
      'not run',
    ] as Verdict[]) {
      const these = checks.filter((c) => c.verdict === v);
      if (these.length)
        out.push(
          `- **${v}**: ${these.map((c) => `\`${c.claim.better}\` > \`${c.claim.worse}\` (${c.diffPoints === null ? 'not run' : `${c.diffPoints >= 0 ? '+' : '−'}${Math.abs(c.diffPoints).toFixed(1)}`})`).join('; ')}`,
        );
    }
    out.push('');
  }
  out.push(...trainingObservations(result));
  const totalWall = result.rows.reduce((a, r) => a + (r.wallSeconds ?? 0), 0);
  out.push(
    'How far to trust this:',
    '',
    `- **Scale.** Our \`${b.preset}\` model, trained from scratch on ${result.data.trainCases} questions, is not a 2B-parameter VLM pretrained on the web: it has no world knowledge for RL to sharpen, and its SFT targets are template traces built from each case's metadata. The absolute accuracies are not comparable to the paper's; only the directions of the differences are.`,
    `- **Budget.** ${b.max_steps * b.prompts_per_step} prompts per GRPO row (${(((b.max_steps * b.prompts_per_step) / Math.max(1, result.data.trainCases)) * 100).toFixed(0)}% of one pass over the training set); the rows' wall times add up to ${(totalWall / 60).toFixed(1)} minutes. Effects that need many updates (length drift under ECR, slow gains of a semantic reward) may not have had time to appear.`,
    `- **Noise.** One seed per row and ${result.data.evalCases} scored questions: the 95% interval of one accuracy is about ±${(196 * Math.sqrt(0.25 / Math.max(1, result.data.evalCases))).toFixed(1)} points, so most differences of 1–3 points are indistinguishable from noise. The rows are scored on the same questions, so an unpaired test is conservative.`,
    `- **Rewards.** The semantic reward here is the embedded rule-based judge (is the trace consistent with the answer and with the case's modality/organ metadata), not an LLM judge; ECR/CWR reward think-block length in words up to a target, as configured above.`,
    '',
  );
  return out.join('\n');
}
