// GRPO (and Dr. GRPO / DAPO) as one readable loop:
//   1. rollouts — G sampled completions per prompt from the current policy (KV-cache decoding);
//   2. rewards — each configured reward function, weighted and summed;
//   3. advantages — reward minus group mean, scaled per scale_rewards;
//   4. log-probs — current policy, old policy (num_iterations > 1) and reference (beta > 0);
//   5. loss and dLoss/dlogp in TS, weight gradients from the ONNX training graph, AdamW.
// Checkpoints resume to exactly the next step: prompt order and sampling seeds derive from
// (seed, step), never from state that a restart would lose.
import { readFile } from 'node:fs/promises';
import { VqaTokenizer } from '../../data/tokenizer.ts';
import type { VqaCase } from '../../data/vqa-case.ts';
import type { Weights } from '../../engine/model/params.ts';
import { numPatches } from '../../engine/model/config.ts';
import { TrainingSession } from '../../engine/train/training-session.ts';
import { AdamW } from '../../engine/optim/adamw.ts';
import { clipGradNorm } from '../../engine/optim/grad-clip.ts';
import { warmupCosineSchedule } from '../../engine/optim/lr-schedule.ts';
import type { JsonObject } from '../../registry/manifest.ts';
import { generate } from '../../runtime/generate.ts';
import { promptIds } from '../../runtime/prompt.ts';
import { latestCheckpoint, runStartTime, saveCheckpoint, secondsSince, type TrainerState } from '../checkpoint.ts';
import { buildPatchCache, buildRasterCache, type PatchCache } from '../image-cache.ts';
import { augmentedPatches } from '../image-augment.ts';
import { BestCheckpoint } from '../best-checkpoint.ts';
import { requestRng } from '../../runtime/sampling.ts';
import { initialModel } from '../model-init.ts';
import { RunLog } from '../run-log.ts';
import { epochOrder } from '../epoch-order.ts';
import {
  assertPackageDirFree,
  datasetOf,
  evaluateAndPackage,
  evaluateWeights,
  loadCases,
  spreadSample,
  type FinishRunInput,
  type SetMetrics,
} from '../run-output.ts';
import { computeAdvantages } from './advantages.ts';
import { backwardInChunks, scoreInChunks, scoringBatch } from './chunked-scoring.ts';
import { grpoLoss, grpoLossConfigOf } from './loss.ts';
import { openPolicySessions } from './policy-sessions.ts';
import { buildRewardFunctions, type NamedReward } from './reward-set.ts';
import { combineRewards, type RewardCase } from './rewards.ts';
import type { GrpoConfig } from './grpo-config.ts';
import { validateGrpoConfig } from './grpo-config.ts';

/** Parameters of the vision encoder (what freeze_vision keeps fixed). */
const VISION_PREFIX = 'vision.';

export interface GrpoResult {
  runDir: string;
  steps: number;
  /** Mean combined reward of each step, in order (this process's steps only). */
  rewardCurve: number[];
  validation: Record<string, Record<string, number | null>> | null;
  /** Scores of the final weights on every evaluation set (validation, or the sets hooks.finish named). */
  scores: SetMetrics;
  packageDir: string | null;
  wallSeconds: number;
  weights: Weights;
}

export interface GrpoHooks {
  /** Extra reward functions (tests); added to the configured ones with weight 1. */
  extraRewards?: NamedReward[];
  /** Called after every optimizer step (the fine-tune worker reports progress through it). */
  onStep?(r: Record<string, number>): void;
  /** Checked between steps; true stops the run after saving a checkpoint. */
  shouldStop?(): boolean;
  /** Stop (after checkpointing) once this many steps have been taken in total; for tests. */
  stopAfterStep?: number;
  quiet?: boolean;
  /** Cases already loaded (the fine-tune worker passes the uploaded set). */
  trainCases?: VqaCase[];
  validationCases?: VqaCase[];
  trainSha256?: string;
  /** How the finished run is scored and packaged, where the caller needs more than the config says. */
  finish?: GrpoFinish;
}

/** The fine-tune worker's ending: its own case sets, the base model's scores beside the new ones, its provenance. */
export interface GrpoFinish extends Partial<Pick<FinishRunInput, 'evalSets' | 'baseline' | 'latencySamples' | 'onPhase' | 'dataset'>> {
  /** Replaces the trainer config as the manifest's training record. */
  training?: JsonObject;
}

function toRewardCase(c: VqaCase): RewardCase {
  return {
    question: c.question,
    answer: c.answer,
    answerType: c.answerType,
    options: c.options,
    modality: c.modality,
    organ: c.organ,
    contentType: c.contentType,
    questionType: c.questionType,
  };
}

export async function trainGrpo(cfg: GrpoConfig, hooks: GrpoHooks = {}): Promise<GrpoResult> {
  validateGrpoConfig(cfg);
  await assertPackageDirFree(cfg.package_dir);
  const started = performance.now();
  const log = new RunLog(cfg.out, hooks.quiet);
  const tokenizerBytes = await readFile(cfg.tokenizer);
  const tk = new VqaTokenizer(JSON.parse(tokenizerBytes.toString('utf8')) as object);
  const train = hooks.trainCases ? { cases: hooks.trainCases, sha256: hooks.trainSha256 ?? '' } : await loadCases(cfg.train, 'train');
  const validation = hooks.validationCases ?? (cfg.validation.length ? (await loadCases(cfg.validation, 'validation')).cases : []);

  // The reference policy is the initial model, also when resuming.
  const ref = await initialModel(cfg.init, cfg.preset, tk.vocabSize, cfg.seed);
  const resumed = await latestCheckpoint(cfg.out);
  const policy = resumed ? await initialModel(resumed.dir, cfg.preset, tk.vocabSize, cfg.seed) : ref;
  const { config, specs } = policy;
  // Without a KL term the reference is never read, so the policy may own the initial arrays.
  const weights: Weights = new Map([...policy.weights].map(([k, v]) => [k, policy === ref && cfg.beta !== 0 ? v.slice() : v]));
  const np = numPatches(config);
  const maxPrompt = config.text.maxPositions - np - cfg.max_completion_length;
  if (maxPrompt < 8) throw new Error(`max_completion_length ${cfg.max_completion_length} leaves no room for the question`);

  const evalCases = spreadSample(validation, cfg.eval_samples);
  const finalCases = Object.values(hooks.finish?.evalSets ?? {}).flat();
  const patches: PatchCache = await buildPatchCache(
    [...train.cases, ...evalCases, ...finalCases].map((c) => c.imagePath),
    config,
  );
  const rasters = cfg.augment_images
    ? await buildRasterCache(
        train.cases.map((c) => c.imagePath),
        config,
      )
    : null;
  const best = cfg.eval_every > 0 && evalCases.length ? await BestCheckpoint.open(cfg.out) : null;
  const rewards = [...buildRewardFunctions(cfg), ...(hooks.extraRewards ?? [])];
  const rewardWeights = Object.fromEntries(rewards.map((r) => [r.name, r.weight]));
  if (Object.keys(rewardWeights).length !== rewards.length)
    throw new Error(`reward functions must have distinct names: ${rewards.map((r) => r.name).join(', ')}`);
  const totalSteps = cfg.max_steps;
  log.info(
    `grpo: ${train.cases.length} prompts, ${totalSteps} steps × ${cfg.prompts_per_step} prompts × ${cfg.num_generations} generations, loss ${cfg.loss_type}, scale_rewards ${cfg.scale_rewards}, rewards ${rewards.map((r) => `${r.name}×${r.weight}`).join(' + ')}, init ${cfg.init}${resumed ? ` (resuming ${resumed.dir})` : ''}`,
  );

  const decays = new Set(specs.filter((s) => s.decay).map((s) => s.name));
  // Frozen parameters stay out of the optimizer (and out of the clipped gradient norm).
  const frozen = (name: string) => cfg.freeze_vision && name.startsWith(VISION_PREFIX);
  const trainable: Weights = new Map([...weights].filter(([name]) => !frozen(name)));
  const opt = new AdamW(trainable, { weightDecay: cfg.weight_decay, noWeightDecay: (n) => !decays.has(n) });
  if (resumed?.optimizer) opt.importState(resumed.optimizer);
  const lr = warmupCosineSchedule({ peakLr: cfg.learning_rate, warmupSteps: Math.min(cfg.warmup, totalSteps), totalSteps, minRatio: cfg.min_lr_ratio });
  const trainer = await TrainingSession.create(config, { withGrads: true, intraOpThreads: cfg.threads });
  const scorer = await TrainingSession.create(config, { withGrads: false, intraOpThreads: cfg.threads });
  const policySessions = await openPolicySessions(config, cfg.threads);
  const runStart = runStartTime(started, resumed);
  const state = (step: number): TrainerState => ({
    method: 'grpo',
    step,
    totalSteps,
    cursor: {},
    seed: cfg.seed,
    modelConfig: config,
    trainerConfig: cfg,
    createdAt: new Date().toISOString(),
    trainingSeconds: secondsSince(runStart),
  });

  const G = cfg.num_generations;
  const P = cfg.prompts_per_step;
  const stepsPerEpoch = Math.max(1, Math.floor(train.cases.length / P));
  const rewardCurve: number[] = [];
  let step = resumed?.state.step ?? 0;
  try {
    while (step < totalSteps) {
      if (hooks.shouldStop?.() || (hooks.stopAfterStep !== undefined && step >= hooks.stopAfterStep)) break;
      const t0 = performance.now();
      const epoch = Math.floor(step / stepsPerEpoch);
      const order = epochOrder(train.cases.length, cfg.seed, epoch);
      const at = (step % stepsPerEpoch) * P;
      const prompts = Array.from({ length: Math.min(P, train.cases.length) }, (_, i) => train.cases[order[(at + i) % order.length]]);
      // One image per prompt, shared by its G completions (the group compares answers, not images);
      // an augmented copy is seeded by (seed, step, prompt) like everything else.
      const images = prompts.map((c, p) =>
        rasters ? augmentedPatches(rasters.get(c.imagePath)!, config, requestRng((cfg.seed * 7_919 + step * 104_729 + p) >>> 0)) : patches.get(c.imagePath)!,
      );

      // 1. rollouts: G completions per prompt, sampling seeded by (seed, step, row)
      const rows = prompts.flatMap((c, p) =>
        Array.from({ length: G }, (_, g) => ({
          case: c,
          patches: images[p],
          promptIds: promptIds(tk, c.question, maxPrompt),
          sampling: { temperature: cfg.temperature, topP: cfg.top_p },
          maxTokens: cfg.max_completion_length,
          seed: (cfg.seed * 1_000_003 + step * 9176 + p * G + g) >>> 0,
        })),
      );
      const rollout = await generate(policySessions.withWeights(weights), rows, { stopIds: [tk.answerEndId, tk.eosId], padId: tk.padId });
      const completions = rollout.rows.map((r) => tk.decode(r.tokens.filter((t) => t !== tk.eosId)));
      const tRollout = performance.now();

      // 2. rewards, 3. advantages
      const cases = rows.map((r) => toRewardCase(r.case));
      const perFunction: Record<string, number[]> = {};
      for (const rf of rewards) perFunction[rf.name] = await rf.fn(completions, cases);
      const combined = combineRewards(perFunction, rewardWeights);
      const adv = computeAdvantages(combined, G, cfg.scale_rewards);

      // 4. log-probs of the sampled tokens under the current, old and reference policies
      const batch = scoringBatch(
        config,
        rows.map((r, i) => ({ ids: [...r.promptIds, ...rollout.rows[i].tokens], promptLength: r.promptIds.length, patches: r.patches })),
        tk.padId,
      );
      const logpOld = cfg.num_iterations > 1 ? (await scoreInChunks(scorer, weights, batch)).logprobs : undefined;
      const logpRef = cfg.beta !== 0 ? (await scoreInChunks(scorer, ref.weights, batch)).logprobs : undefined;
      const terminated = rollout.rows.map((r) => r.finishReason === 'stop');

      // 5. num_iterations optimizer steps on this generation batch
      let metrics: ReturnType<typeof grpoLoss>['metrics'] | null = null;
      let loss = 0;
      let gradNorm = 0;
      for (let it = 0; it < cfg.num_iterations && step < totalSteps; it++) {
        const cur = await scoreInChunks(scorer, weights, batch);
        const l = grpoLoss(
          {
            numSequences: rows.length,
            seqLen: batch.seqLen,
            logpNew: cur.logprobs,
            logpOld,
            logpRef,
            mask: batch.lossMask,
            advantages: adv.advantages,
            terminated,
            entropy: cur.entropy,
          },
          grpoLossConfigOf(cfg),
        );
        const grads = await backwardInChunks(trainer, weights, batch, l.grad);
        for (const name of [...grads.keys()]) if (frozen(name)) grads.delete(name);
        gradNorm = clipGradNorm(grads, cfg.grad_clip);
        step += 1;
        opt.step(grads, lr(step));
        metrics = l.metrics;
        loss = l.loss;
      }

      const meanReward = combined.reduce((a, b) => a + b, 0) / combined.length;
      rewardCurve.push(meanReward);
      const record: Record<string, number> = {
        loss,
        reward: meanReward,
        reward_std: adv.stats.batchRewardStd,
        frac_reward_zero_std: adv.stats.fracZeroStdGroups,
        kl: metrics?.meanKl ?? 0,
        entropy: metrics?.meanEntropy ?? 0,
        completion_length: rollout.rows.reduce((a, r) => a + r.tokens.length, 0) / rows.length,
        clip_ratio: metrics?.regionClipFraction ?? 0,
        grad_norm: gradNorm,
        lr: lr(step),
        rollout_ms: tRollout - t0,
        step_ms: performance.now() - t0,
      };
      for (const [name, values] of Object.entries(perFunction)) {
        const finite = values.filter(Number.isFinite);
        const m = finite.reduce((a, b) => a + b, 0) / Math.max(1, finite.length);
        record[`rewards/${name}/mean`] = m;
        record[`rewards/${name}/std`] = Math.sqrt(finite.reduce((a, b) => a + (b - m) ** 2, 0) / Math.max(1, finite.length - 1));
      }
      log.step({ step, total: totalSteps, ...record });
      hooks.onStep?.({ step, total: totalSteps, ...record });
      if (best && step % cfg.eval_every === 0) {
        const m = (await evaluateWeights({ method: 'grpo', config, weights, tokenizer: tk, patches, threads: cfg.threads, log }, { validation: evalCases }))
          .validation!;
        const score = m.all.accuracy ?? Number.NaN;
        const improved = await best.consider(state(step), score, weights);
        log.info(
          `validation at step ${step}: ${JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, v]) => [k, v.accuracy])))}${improved ? ' (best so far)' : ''}`,
        );
      }
      if (step % cfg.checkpoint_every === 0 || step === totalSteps || step === hooks.stopAfterStep)
        await saveCheckpoint(cfg.out, state(step), weights, opt.exportState());
    }
    // A cooperative stop (cancel) keeps its progress.
    if (step < totalSteps && hooks.shouldStop?.()) await saveCheckpoint(cfg.out, state(step), weights, opt.exportState());
  } finally {
    await Promise.all([trainer.release(), scorer.release(), policySessions.release()]);
  }

  if (step < totalSteps) {
    return { runDir: cfg.out, steps: step, rewardCurve, validation: null, scores: {}, packageDir: null, wallSeconds: secondsSince(runStart), weights };
  }
  const chosen = cfg.select_best && best?.best ? best.best : null;
  if (chosen) log.info(`packaging the weights of step ${chosen.step} (best validation accuracy ${chosen.score.toFixed(4)})`);
  const finish = hooks.finish ?? {};
  const done = await evaluateAndPackage({
    method: 'grpo',
    config,
    specs,
    weights: chosen?.weights ?? weights,
    tokenizer: tk,
    tokenizerBytes,
    evalSets: finish.evalSets ?? { validation: evalCases },
    patches,
    threads: cfg.threads,
    log,
    packageDir: cfg.package_dir,
    version: cfg.package_version,
    parent: ref.parent,
    seed: cfg.seed,
    training: { ...(finish.training ?? (cfg as unknown as JsonObject)), ...(chosen ? { selected_step: chosen.step } : {}) },
    dataset: finish.dataset ?? datasetOf(cfg.train, train.sha256),
    startedAt: runStart,
    ...(finish.baseline ? { baseline: finish.baseline } : {}),
    ...(finish.latencySamples !== undefined ? { latencySamples: finish.latencySamples } : {}),
    ...(finish.onPhase ? { onPhase: finish.onPhase } : {}),
  });
  return {
    runDir: cfg.out,
    steps: step,
    rewardCurve,
    validation: done.scores.validation ?? null,
    scores: done.scores,
    packageDir: done.packageDir,
    wallSeconds: done.wallSeconds,
    weights,
  };
}
