// GRPO on a Hugging Face base folder (qwen2_vl) with full or LoRA fine-tuning, through the
// architecture-neutral step: prompts by the folder's chat template and tokenizer, images by its
// processor, rewards as configured (decoded completions), checkpoints of the trainable tensors and
// AdamW state only (the base is read from its folder again on resume), and at the end a PEFT
// adapter folder naming its base (LoRA) or a full HF folder with the new weights.
import { copyFile, mkdir, readdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseQwen2VlImageConfig, processRgbImage } from '../../engine/architectures/qwen2-vl/image-processor.ts';
import { buildPromptIds, questionTurns } from '../../engine/architectures/qwen2-vl/prompt.ts';
import { writeSafetensors } from '../../engine/export/safetensors.ts';
import { saveAdapterFolder } from '../../engine/lora/peft-folder.ts';
import { AdamW } from '../../engine/optim/adamw.ts';
import { warmupCosineSchedule } from '../../engine/optim/lr-schedule.ts';
import type { VqaCase } from '../../data/vqa-case.ts';
import { readHfFolder } from '../../hf/folder.ts';
import { decodeNativeRgb } from '../../preprocess/image.ts';
import { latestCheckpoint, runStartTime, saveCheckpoint, secondsSince, type TrainerState } from '../checkpoint.ts';
import { epochOrder } from '../epoch-order.ts';
import type { PolicyPrompt } from '../policy.ts';
import { Qwen2VLPolicy, type TrainMethod } from '../qwen2-vl-policy.ts';
import { loadQwen2VLBase } from '../qwen2-vl-base.ts';
import { RunLog } from '../run-log.ts';
import { loadCases } from '../run-output.ts';
import type { GrpoConfig } from './grpo-config.ts';
import { grpoPolicyStep, type StepReward } from './policy-step.ts';
import { buildRewardFunctions, type NamedReward } from './reward-set.ts';

export interface HfGrpoConfig extends Omit<GrpoConfig, 'method'> {
  /** The HF folder of the base model (config.json model_type qwen2_vl). */
  base: string;
  method: TrainMethod;
}

export interface HfGrpoHooks {
  trainCases?: VqaCase[];
  extraRewards?: NamedReward[];
  onStep?(r: Record<string, number>): void;
  shouldStop?(): boolean;
  stopAfterStep?: number;
  quiet?: boolean;
}

export interface HfGrpoResult {
  steps: number;
  rewardCurve: number[];
  /** The PEFT folder (LoRA) or HF folder (full) written at the end; null when the run stopped early. */
  outputDir: string | null;
  trainable: Map<string, Float32Array>;
}

const IMAGE_LIMITS = { maxBytes: 20 * 1024 * 1024, maxInputPixels: 40_000_000 };

export async function trainGrpoOnHfFolder(cfg: HfGrpoConfig, hooks: HfGrpoHooks = {}): Promise<HfGrpoResult> {
  const started = performance.now();
  const log = new RunLog(cfg.out, hooks.quiet);
  const folder = await readHfFolder(cfg.base);
  const { config, weights: base } = await loadQwen2VLBase(cfg.base, folder.config);
  if (!folder.preprocessor) throw new Error(`${cfg.base}: no preprocessor_config.json`);
  const processor = parseQwen2VlImageConfig(folder.preprocessor, 'preprocessor_config.json');
  const train = hooks.trainCases ?? (await loadCases(cfg.train, 'train')).cases;
  const stopIds = folder.generation.eosTokenIds;
  const padId = folder.generation.padTokenId ?? folder.tokenizer.specialTokens.pad?.id ?? stopIds[0] ?? 0;

  const resumed = await latestCheckpoint(cfg.out);
  const policy = await Qwen2VLPolicy.create({
    config,
    base,
    method: cfg.method,
    seed: cfg.seed,
    stopIds,
    padId,
    threads: cfg.threads,
    ...(resumed ? { trainable: new Map(resumed.weights) } : {}),
  });
  const opt = new AdamW(policy.trainable, { weightDecay: cfg.weight_decay, noWeightDecay: (n) => !policy.decays(n) });
  if (resumed?.optimizer) opt.importState(resumed.optimizer);
  const totalSteps = cfg.max_steps;
  const lr = warmupCosineSchedule({ peakLr: cfg.learning_rate, warmupSteps: Math.min(cfg.warmup, totalSteps), totalSteps, minRatio: cfg.min_lr_ratio });
  const prompt = {
    render: (t: Parameters<typeof folder.chatTemplate.render>[0], o: { addGenerationPrompt: boolean }) => folder.chatTemplate.render(t, o),
    encode: (s: string) => folder.tokenizer.encode(s),
  };
  const m2 = config.vision.spatialMergeSize ** 2;
  const prepared = new Map<string, PolicyPrompt>();
  const prepare = async (c: VqaCase): Promise<PolicyPrompt> => {
    const key = `${c.imagePath}\u0000${c.question}`;
    let p = prepared.get(key);
    if (!p) {
      const img = await decodeNativeRgb(await readFile(c.imagePath), IMAGE_LIMITS, 'white');
      const processed = await processRgbImage(processor, img.rgb, img.width, img.height);
      const [t, h, w] = processed.gridThw;
      p = {
        promptIds: buildPromptIds(prompt, questionTurns(c.question, 1), { imageTokenId: config.tokens.imageTokenId, imageTokenCounts: [(t * h * w) / m2] }),
        images: { pixelValues: processed.pixelValues, grids: [processed.gridThw] },
      };
      prepared.set(key, p);
    }
    return p;
  };
  const named = [...buildRewardFunctions(cfg), ...(hooks.extraRewards ?? [])];
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
  const P = cfg.prompts_per_step;
  const stepsPerEpoch = Math.max(1, Math.floor(train.length / P));
  log.info(
    `grpo on ${config.modelType} ${cfg.base}: ${cfg.method.type === 'lora' ? `LoRA r=${cfg.method.lora.r} alpha=${cfg.method.lora.lora_alpha}, ${policy.trainable.size} adapter tensors` : 'full fine-tuning'}, ${train.length} prompts, ${totalSteps} steps${resumed ? ` (resuming ${resumed.dir})` : ''}`,
  );
  const rewardCurve: number[] = [];
  let step = resumed?.state.step ?? 0;
  try {
    while (step < totalSteps) {
      if (hooks.shouldStop?.() || (hooks.stopAfterStep !== undefined && step >= hooks.stopAfterStep)) break;
      const order = epochOrder(train.length, cfg.seed, Math.floor(step / stepsPerEpoch));
      const at = (step % stepsPerEpoch) * P;
      const cases = Array.from({ length: Math.min(P, train.length) }, (_, i) => train[order[(at + i) % order.length]!]!);
      const prompts = await Promise.all(cases.map(prepare));
      const rewards: StepReward[] = named.map((r) => ({
        name: r.name,
        weight: r.weight,
        fn: (completions, promptIndex) =>
          r.fn(
            completions.map((t) =>
              folder.tokenizer.decode(
                t.filter((id) => !stopIds.includes(id)),
                { skipSpecial: true },
              ),
            ),
            promptIndex.map((i) => cases[i]!),
          ),
      }));
      const r = await grpoPolicyStep(policy, opt, prompts, rewards, cfg, step, lr, totalSteps);
      step += r.steps;
      rewardCurve.push(r.metrics.reward!);
      log.step({ step, total: totalSteps, ...r.metrics });
      hooks.onStep?.({ step, total: totalSteps, ...r.metrics });
      if (step % cfg.checkpoint_every === 0 || step === totalSteps || step === hooks.stopAfterStep)
        await saveCheckpoint(cfg.out, state(step), policy.trainable, opt.exportState());
    }
    if (step < totalSteps && hooks.shouldStop?.()) await saveCheckpoint(cfg.out, state(step), policy.trainable, opt.exportState());
  } finally {
    await policy.release();
  }
  if (step < totalSteps) return { steps: step, rewardCurve, outputDir: null, trainable: policy.trainable };
  const outDir = cfg.package_dir;
  if (policy.method.kind === 'lora') {
    await saveAdapterFolder(outDir, {
      config: policy.method.config,
      targets: [...policy.method.targets],
      weights: policy.trainable,
      meta: { base_model_name_or_path: resolve(cfg.base), task_type: 'CAUSAL_LM' },
    });
  } else {
    // A full fine-tune is a new HF folder: the base's files, the trained weights.
    await mkdir(outDir, { recursive: true });
    for (const name of await readdir(cfg.base)) {
      if (name.endsWith('.safetensors') || name.endsWith('.safetensors.index.json') || name === 'golden') continue;
      await copyFile(join(cfg.base, name), join(outDir, name));
    }
    const tensors = Object.fromEntries([...policy.trainable].map(([name, data]) => [name, { dtype: 'F32' as const, shape: policy.shapeOf(name), data }]));
    await writeSafetensors(join(outDir, 'model.safetensors'), tensors, { format: 'pt' });
  }
  log.info(`wrote ${policy.method.kind === 'lora' ? 'the PEFT adapter' : 'the fine-tuned model'} to ${outDir}`);
  return { steps: step, rewardCurve, outputDir: outDir, trainable: policy.trainable };
}
