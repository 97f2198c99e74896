// Supervised fine-tuning: one readable loop. Teacher-forced completions (answer-only or grounded
// trace), mean NLL over completion tokens, AdamW with warmup + cosine and global-norm clipping,
// self-describing checkpoints that resume to exactly the step a non-stop run would take, and at
// the end an evaluated, exported model package.
import { readFile } from 'node:fs/promises';
import { VqaTokenizer } from '../../data/tokenizer.ts';
import { numPatches } from '../../engine/model/config.ts';
import type { Weights } from '../../engine/model/params.ts';
import { TrainingSession } from '../../engine/train/training-session.ts';
import { AdamW } from '../../engine/optim/adamw.ts';
import { clipGradNorm } from '../../engine/optim/grad-clip.ts';
import { warmupCosineSchedule } from '../../engine/optim/lr-schedule.ts';
import type { JsonObject } from '../../registry/manifest.ts';
import { assembleBatch } from '../batches.ts';
import { epochOrder } from '../epoch-order.ts';
import { latestCheckpoint, runStartTime, saveCheckpoint, secondsSince, type TrainerState } from '../checkpoint.ts';
import { encodeExample, type EncodedExample } from '../examples.ts';
import { buildPatchCache } from '../image-cache.ts';
import { initialModel } from '../model-init.ts';
import { RunLog } from '../run-log.ts';
import { assertPackageDirFree, datasetOf, evaluateAndPackage, loadCases, spreadSample } from '../run-output.ts';
import { sftLoss } from './sft-loss.ts';
import type { SftConfig } from './sft-config.ts';

export interface SftResult {
  runDir: string;
  steps: number;
  /** Loss of each step this process took. */
  losses: number[];
  finalLoss: number;
  weights: Weights;
  validation: Record<string, Record<string, number | null>> | null;
  packageDir: string | null;
  wallSeconds: number;
}

export interface SftHooks {
  /** Stop (after checkpointing) once this many steps have been taken in total; for tests. */
  stopAfterStep?: number;
  quiet?: boolean;
}

export async function trainSft(cfg: SftConfig, hooks: SftHooks = {}): Promise<SftResult> {
  await assertPackageDirFree(cfg.package_dir);
  const log = new RunLog(cfg.out, hooks.quiet);
  const started = performance.now();
  const tokenizerBytes = await readFile(cfg.tokenizer);
  const tk = new VqaTokenizer(JSON.parse(tokenizerBytes.toString('utf8')) as object);
  const train = await loadCases(cfg.train, 'train');
  const validation = cfg.validation.length ? await loadCases(cfg.validation, 'validation') : null;

  // 1. the model: resume this run's latest checkpoint, else the configured initialisation
  const resumed = await latestCheckpoint(cfg.out);
  const init = await initialModel(resumed ? resumed.dir : cfg.init, cfg.preset, tk.vocabSize, cfg.seed);
  const { config, specs, weights } = init;
  const maxText = Math.min(cfg.max_length, config.text.maxPositions - numPatches(config));

  // 2. the data: token ids once, image patches once
  const examples: EncodedExample[] = [];
  train.cases.forEach((c, i) => {
    const e = encodeExample(tk, c, i, cfg.trace, maxText);
    if (e) examples.push(e);
  });
  const patches = await buildPatchCache(
    [...train.cases, ...(validation?.cases ?? [])].map((c) => c.imagePath),
    config,
  );
  const stepsPerEpoch = Math.floor(examples.length / cfg.batch_size);
  if (stepsPerEpoch < 1) throw new Error(`only ${examples.length} usable examples for batch_size ${cfg.batch_size}`);
  const totalSteps = cfg.max_steps > 0 ? Math.min(cfg.max_steps, cfg.epochs * stepsPerEpoch) : cfg.epochs * stepsPerEpoch;
  log.info(
    `sft: ${examples.length}/${train.cases.length} examples, ${stepsPerEpoch} steps/epoch, ${totalSteps} steps, preset ${config.preset}, init ${resumed ? `resume ${resumed.dir}` : cfg.init}`,
  );

  // 3. optimizer and schedule
  const decays = new Set(specs.filter((s) => s.decay).map((s) => s.name));
  const opt = new AdamW(weights, { weightDecay: cfg.weight_decay, noWeightDecay: (n) => !decays.has(n) });
  if (resumed?.optimizer) opt.importState(resumed.optimizer);
  const lr = warmupCosineSchedule({ peakLr: cfg.learning_rate, warmupSteps: Math.min(cfg.warmup, totalSteps), totalSteps, minRatio: cfg.min_lr_ratio });
  const session = await TrainingSession.create(config, { withGrads: true, intraOpThreads: cfg.threads });

  const runStart = runStartTime(started, resumed);
  const state = (step: number): TrainerState => ({
    method: 'sft',
    step,
    totalSteps,
    cursor: { epoch: Math.floor(step / stepsPerEpoch) },
    seed: cfg.seed,
    modelConfig: config,
    trainerConfig: cfg,
    createdAt: new Date().toISOString(),
    trainingSeconds: secondsSince(runStart),
  });

  // 4. the loop
  let step = resumed?.state.step ?? 0;
  let lastLoss = NaN;
  let order: number[] = [];
  let orderEpoch = -1;
  const losses: number[] = [];
  while (step < totalSteps) {
    if (hooks.stopAfterStep !== undefined && step >= hooks.stopAfterStep) break;
    const epoch = Math.floor(step / stepsPerEpoch);
    if (epoch !== orderEpoch) {
      order = epochOrder(examples.length, cfg.seed, epoch);
      orderEpoch = epoch;
    }
    const at = (step % stepsPerEpoch) * cfg.batch_size;
    const rows = order.slice(at, at + cfg.batch_size).map((i) => {
      const e = examples[i];
      return { ids: e.ids, promptLength: e.promptLength, patches: patches.get(train.cases[e.caseIndex].imagePath)! };
    });
    const t0 = performance.now();
    const b = assembleBatch(config, rows, tk.padId);
    const gradFor = sftLoss(new Float32Array(b.lossMask.length), b.lossMask).gradLogprobs; // −mask/N, needs no forward
    const out = await session.backward(weights, b.patches, b.batch, gradFor);
    const { loss, tokens } = sftLoss(out.logprobs, b.lossMask);
    const gradNorm = clipGradNorm(out.grads, cfg.grad_clip);
    step += 1;
    opt.step(out.grads, lr(step));
    lastLoss = loss;
    losses.push(loss);
    log.step({ step, total: totalSteps, epoch, loss, lr: lr(step), grad_norm: gradNorm, tokens, ms: performance.now() - t0 });
    if (step % cfg.checkpoint_every === 0 || step === totalSteps || step === hooks.stopAfterStep)
      await saveCheckpoint(cfg.out, state(step), weights, opt.exportState());
  }
  await session.release();
  if (step < totalSteps)
    return { runDir: cfg.out, steps: step, losses, finalLoss: lastLoss, validation: null, packageDir: null, wallSeconds: secondsSince(runStart), weights };

  // 5. evaluate on the validation splits and write the package
  const done = await evaluateAndPackage({
    method: 'sft',
    config,
    specs,
    weights,
    tokenizer: tk,
    tokenizerBytes,
    evalSets: { validation: spreadSample(validation?.cases ?? [], cfg.eval_samples) },
    patches,
    threads: cfg.threads,
    log,
    packageDir: cfg.package_dir,
    version: cfg.package_version,
    parent: init.parent,
    seed: cfg.seed,
    training: { ...(cfg as unknown as JsonObject), steps: totalSteps },
    dataset: datasetOf(cfg.train, train.sha256),
    startedAt: runStart,
  });
  return {
    runDir: cfg.out,
    steps: totalSteps,
    losses,
    finalLoss: lastLoss,
    validation: done.scores.validation ?? null,
    packageDir: done.packageDir,
    wallSeconds: done.wallSeconds,
    weights,
  };
}
