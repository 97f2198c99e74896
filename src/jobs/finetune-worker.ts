// The fine-tune worker: one child process per job attempt, started by job-queue.ts as
//   node --import tsx src/jobs/finetune-worker.ts <job id> <data dir>
// It reads its job from the job database, then:
//   1. loads the stored dataset and splits off the held-out fraction (deterministic in the seed);
//   2. scores the base model on the held-out cases and the standard validation sample (cached in
//      the run folder, so a resumed attempt does not score it again);
//   3. runs GRPO from the base package, resuming from the run's latest checkpoint if there is one;
//   4. scores the new weights the same way and writes the model package (parent, dataset sha256,
//      hyperparameters, seed, before/after metrics);
//   5. reports over IPC; the server records and registers. It never writes the job database.
// ONNX Runtime and sharp get one thread each and the process a lower CPU priority, so the server in
// the parent keeps answering at its usual latency.
import { mkdir, readFile, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { loadVqaJsonl } from '../data/jsonl-loader.ts';
import { VqaTokenizer } from '../data/tokenizer.ts';
import type { VqaCase } from '../data/vqa-case.ts';
import { numPatches, type ModelConfig } from '../engine/model/config.ts';
import { readJson, sha256Hex, writeJsonDurably } from '../files/durable-file.ts';
import type { JsonObject } from '../registry/manifest.ts';
import { verifyModelPackage } from '../registry/model-package.ts';
import { loadRuntime, maxPromptTokensFor } from '../runtime/model-runtime.ts';
import { GRPO_DEFAULTS, type GrpoConfig } from '../training/grpo/grpo-config.ts';
import { trainGrpo } from '../training/grpo/grpo-trainer.ts';
import { buildPatchCache } from '../training/image-cache.ts';
import { manifestMetrics, scoreSets, type SetMetrics } from '../training/run-output.ts';
import { DATASET_JSONL, UPLOAD_DATASET_NAME, datasetDir, runDirOf } from './dataset-store.ts';
import { JobStore, type FineTuneJob } from './job-store.ts';
import { findLongQuestions, longQuestionsWarning } from './long-questions.ts';
import { loadStandardValidation, VALIDATION_UNAVAILABLE } from './standard-validation.ts';
import { EXIT_ORPHANED, type ServerMessage, type WorkerMessage } from './worker-protocol.ts';

/** Held-out cases: the `fraction` whose hash of (seed, id) is smallest; at least one case trains. */
export function splitHeldOut(cases: readonly VqaCase[], fraction: number, seed: number): { train: VqaCase[]; heldOut: VqaCase[] } {
  const key = (c: VqaCase) => sha256Hex(`${seed}:${c.id}`);
  const ranked = [...cases].sort((a, b) => (key(a) < key(b) ? -1 : 1));
  let n = Math.round(cases.length * fraction);
  if (fraction > 0 && n === 0 && cases.length > 1) n = 1;
  n = Math.min(n, cases.length - 1);
  const held = new Set(ranked.slice(0, n).map((c) => c.id));
  return { train: cases.filter((c) => !held.has(c.id)), heldOut: cases.filter((c) => held.has(c.id)) };
}

class Stopped extends Error {}

class Worker {
  private stopReason: ServerMessage['reason'] | null = null;
  private training = false;
  private announcedEvalAfter = false;

  constructor(
    private readonly job: FineTuneJob,
    private readonly dataDir: string,
  ) {}

  send(message: WorkerMessage): Promise<void> {
    if (!process.send) {
      process.stdout.write(`${JSON.stringify(message)}\n`);
      return Promise.resolve();
    }
    return new Promise((resolve) => process.send!(message, undefined, {}, () => resolve()));
  }

  event(event: string, message: string, data?: Record<string, unknown>, level: 'info' | 'warn' | 'error' = 'info'): Promise<void> {
    return this.send({ type: 'event', level, event, message, ...(data ? { data } : {}) });
  }

  onServerMessage(message: ServerMessage): void {
    if (message?.type !== 'stop') return;
    this.stopReason = message.reason;
    // Outside the training loop there is no checkpoint to save: stop at once.
    if (!this.training) void this.finishStopped(0);
  }

  private async finishStopped(step: number): Promise<never> {
    await this.send(this.stopReason === 'cancel' ? { type: 'cancelled', step } : { type: 'paused', step });
    process.exit(0);
  }

  private checkStop(): void {
    if (this.stopReason !== null) throw new Stopped();
  }

  async run(): Promise<void> {
    const { job, dataDir } = this;
    const spec = job.spec;
    const hp = job.hyperparameters;
    const runDir = runDirOf(dataDir, job.id);
    await mkdir(runDir, { recursive: true });
    const packageDir = path.join(spec.models_dir, spec.result_model);

    // A previous attempt may have written the package and died before the server recorded it.
    const existing = await this.existingPackage(packageDir);
    if (existing) {
      await this.event('package_found', `model package ${spec.result_model} from an earlier attempt is complete`);
      await this.send({ type: 'succeeded', result_model: spec.result_model, metrics: existing });
      return;
    }

    // 1. the base model and the data; if either is gone or altered, retrying cannot help
    try {
      await verifyModelPackage(spec.base_dir);
    } catch (error) {
      throw new Fatal(`the base model ${job.base_model} cannot be used: ${(error as Error).message.split(path.dirname(spec.base_dir)).join('models')}`);
    }
    if (!job.dataset_sha256) throw new Fatal('the job has no stored dataset');
    const jsonlPath = path.join(datasetDir(dataDir, job.dataset_sha256), DATASET_JSONL);
    const loaded = await loadVqaJsonl(jsonlPath, { dataset: UPLOAD_DATASET_NAME });
    if (loaded.errors.length > 0) throw new Fatal(`the stored dataset no longer parses (line ${loaded.errors[0]!.line})`);
    const { train, heldOut } = splitHeldOut(loaded.cases, spec.validation_fraction, hp.seed);
    const validation = await loadStandardValidation(spec.standard_validation, hp.eval_samples);
    const standard = validation.cases;
    if (validation.warning !== undefined) {
      await this.event('validation_unavailable', validation.warning, { validation_cases: standard.length, unavailable: validation.unavailable }, 'warn');
    }
    const standardText = validation.unavailable ? 'no standard validation (unavailable)' : `${standard.length} standard validation cases`;
    await this.event('dataset_loaded', `${train.length} cases to train on, ${heldOut.length} held out, ${standardText}`, {
      train_cases: train.length,
      held_out_cases: heldOut.length,
      validation_cases: standard.length,
    });
    this.checkStop();

    const config = JSON.parse(await readFile(path.join(spec.base_dir, 'config.json'), 'utf8')) as ModelConfig;
    const tokenizerPath = path.join(spec.base_dir, 'tokenizer.json');
    // The fewer question tokens of what training (prompt + rollout) and scoring (prompt + answer) leave.
    const questionLimit = Math.min(maxPromptTokensFor(config), config.text.maxPositions - numPatches(config) - hp.max_completion_length);
    const long = longQuestionsWarning(findLongQuestions(await VqaTokenizer.load(tokenizerPath), loaded.cases, loaded.caseLines, questionLimit), questionLimit);
    if (long !== undefined) await this.event('questions_truncated', long, { max_question_tokens: questionLimit }, 'warn');
    const threads = spec.worker_threads;
    const evalSets = { held_out: heldOut, validation: standard };
    const patches = await buildPatchCache(
      [...heldOut, ...standard].map((c) => c.imagePath),
      config,
      1,
    );

    // 2. the base model, scored once per job
    const beforeFile = path.join(runDir, 'eval-before.json');
    let before = await readJson<SetMetrics>(beforeFile);
    if (!before) {
      await this.event('eval_before', `scoring the base model ${job.base_model}`);
      const rt = await loadRuntime(spec.base_dir, { executionProviders: ['cpu'], intraOpThreads: threads });
      try {
        before = await scoreSets(rt, evalSets, patches, { latencySamples: 0, between: () => this.checkStop() });
      } finally {
        await rt.dispose();
      }
      await writeJsonDurably(beforeFile, before);
    }
    this.checkStop();

    // 3. GRPO (resumes from runDir/checkpoints automatically), then the trainer's own ending: the new
    // weights scored on the same sets and the package written with both scores
    const cfg: GrpoConfig = {
      ...GRPO_DEFAULTS,
      ...hp,
      preset: config.preset,
      tokenizer: tokenizerPath,
      init: spec.base_dir,
      train: [],
      validation: [],
      out: runDir,
      package_dir: packageDir,
      threads,
    };
    await this.event('training', `GRPO for ${hp.max_steps} steps (checkpoint every ${hp.checkpoint_every})`);
    this.training = true;
    const result = await trainGrpo(cfg, {
      trainCases: train,
      validationCases: [],
      trainSha256: job.dataset_sha256,
      quiet: true,
      shouldStop: () => this.stopReason !== null,
      onStep: (r) => {
        void this.send({ type: 'progress', step: r.step ?? 0, total: r.total ?? hp.max_steps, reward_mean: finite(r.reward), kl: finite(r.kl) });
      },
      finish: {
        evalSets,
        baseline: before,
        latencySamples: 0,
        dataset: { name: UPLOAD_DATASET_NAME, sha256: job.dataset_sha256 },
        training: {
          ...(hp as unknown as JsonObject),
          fine_tune_job: job.id,
          base_model: job.base_model,
          validation_fraction: spec.validation_fraction,
          train_cases: train.length,
          held_out_cases: heldOut.length,
          validation_cases: standard.length,
        },
        onPhase: async (phase) => {
          // No checkpoint is left to save: from here a stop ends the process at once.
          this.training = false;
          this.checkStop();
          if (phase === 'evaluating' && !this.announcedEvalAfter) {
            this.announcedEvalAfter = true;
            await this.event('eval_after', 'scoring the fine-tuned model');
          }
        },
      },
    });
    this.training = false;
    if (result.steps < hp.max_steps) return this.finishStopped(result.steps);
    const unavailable = validation.unavailable ? { validation: VALIDATION_UNAVAILABLE } : {};
    const metrics = { before: { ...manifestMetrics(before), ...unavailable }, after: { ...manifestMetrics(result.scores), ...unavailable } };
    await this.event('package_written', `model package ${spec.result_model} written`);
    await this.send({ type: 'succeeded', result_model: spec.result_model, metrics });
  }

  /** The metrics of a complete package this job already wrote, or null. */
  private async existingPackage(dir: string): Promise<Record<string, unknown> | null> {
    if (!(await stat(dir).catch(() => null))) return null;
    const manifest = await verifyModelPackage(dir);
    if (manifest.training.fine_tune_job !== this.job.id) throw new Fatal(`a different model package named ${path.basename(dir)} already exists`);
    return manifest.eval as unknown as Record<string, unknown>;
  }

  async main(): Promise<void> {
    try {
      await this.run();
      process.exit(0);
    } catch (error) {
      if (error instanceof Stopped) return this.finishStopped(0);
      const message = error instanceof Error ? error.message : String(error);
      // Deterministic failures fail the job; anything else is left to the crash/retry path.
      if (error instanceof Fatal) {
        await this.send({ type: 'failed', message });
        process.exit(0);
      }
      process.stderr.write(`fine-tune worker: ${error instanceof Error ? (error.stack ?? message) : message}\n`);
      process.exit(1);
    }
  }
}

/** A failure that retrying cannot fix. */
class Fatal extends Error {}

function finite(x: number | undefined): number | null {
  return typeof x === 'number' && Number.isFinite(x) ? x : null;
}

async function start(): Promise<void> {
  // A third argument names a JSON file holding the job (cluster workers: the job lives in Postgres).
  const [jobId, dataDir, jobFile] = process.argv.slice(2);
  if (!jobId || !dataDir) {
    process.stderr.write('usage: node --import tsx src/jobs/finetune-worker.ts <job id> <data dir> [<job json file>]\n');
    process.exit(64);
  }
  // Serving comes first: a lower priority, one decoder thread for sharp (ORT threads come from the spec).
  try {
    os.setPriority(10);
  } catch {
    // Not permitted in some containers; the thread bound still applies.
  }
  sharp.concurrency(1);
  // A worker whose server is gone stops; the restarted server starts a fresh one from the checkpoint.
  process.on('disconnect', () => process.exit(EXIT_ORPHANED));

  let job: FineTuneJob | undefined;
  if (jobFile) {
    job = JSON.parse(await readFile(jobFile, 'utf8')) as FineTuneJob;
  } else {
    const store = JobStore.open(dataDir);
    job = store.get(jobId);
    store.close();
  }
  if (!job) {
    process.stderr.write(`fine-tune worker: no job ${jobId}\n`);
    process.exit(65);
  }
  const worker = new Worker(job, dataDir);
  process.on('message', (m) => worker.onServerMessage(m as ServerMessage));
  await worker.main();
}

// Run only as the process entry, so tests can import splitHeldOut.
if (process.argv[1]?.endsWith('finetune-worker.ts')) await start();
