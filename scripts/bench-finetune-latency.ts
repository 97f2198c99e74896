// Serving latency while a fine-tune trains (training must not slow serving down): starts the real server in this process
// with the fine-tune routes, measures p50 of sequential /v1/vqa requests with no job, then with a GRPO
// job training in its worker child (one ORT thread, lower priority), then idle again. The base model
// is models/clinvqa-sft (copied into a temp models dir, so the repository's models/ is untouched);
// the upload is the fixture cases. Last line:
//   finetune p50_idle_ms=<ms> p50_training_ms=<ms> ratio=<training/idle>   (bar: ratio ≤ 3)
// Usage: node --import tsx scripts/bench-finetune-latency.ts [--base models/clinvqa-sft] [--requests 40]
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger } from '../src/audit/logger.ts';
import { loadConfig } from '../src/config.ts';
import { fineTuneRouters } from '../src/app.ts';
import { startServer } from '../src/http/serve.ts';
import { createFineTunes } from '../src/jobs/fine-tunes.ts';
import { loadModelRuntime } from '../src/runtime/model-runtime.ts';

const { values } = parseArgs({ options: { base: { type: 'string', default: 'models/clinvqa-sft' }, requests: { type: 'string', default: '40' } } });
const baseDir = path.resolve(values.base!);
const requests = Number(values.requests);
if (!existsSync(path.join(baseDir, 'manifest.json'))) throw new Error(`no model package at ${baseDir}`);
const baseId = path.basename(baseDir);

const root = mkdtempSync(path.join(os.tmpdir(), 'bench-finetune-'));
const modelsDir = path.join(root, 'models');
cpSync(baseDir, path.join(modelsDir, baseId), { recursive: true });
const ADMIN_KEY = 'bench-admin-key-0123456789';
const config = loadConfig({
  ...process.env,
  PORT: '0',
  HOST: '127.0.0.1',
  CLINVQA_API_KEYS: `admin:${ADMIN_KEY}`,
  CLINVQA_DATA_DIR: path.join(root, 'var'),
  CLINVQA_MODELS_DIR: modelsDir,
  CLINVQA_LOG_LEVEL: 'error',
  CLINVQA_RATE_LIMIT_ADMIN: '0',
});
const fineTunes = createFineTunes({ dataDir: config.dataDir, modelsDir, standardValidation: [], workerThreads: 1 });
const server = await startServer({
  config,
  loader: loadModelRuntime,
  logger: createLogger('error'),
  extraRouters: (parts) => fineTuneRouters(fineTunes, parts),
});
await fineTunes.started;
const url = `http://127.0.0.1:${server.port}`;
const auth = { Authorization: `Bearer ${ADMIN_KEY}` };
const FIX = 'test/fixtures/vqa';
const image = readFileSync(path.join(FIX, 'images', 'synpic29265.jpg'));

async function ask(): Promise<number> {
  const form = new FormData();
  form.append('image', new Blob([new Uint8Array(image)]), 'x.jpg');
  form.append('question', 'Is there air under the diaphragm?');
  form.append('model', baseId);
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/vqa`, { method: 'POST', headers: auth, body: form });
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`/v1/vqa answered ${res.status}`);
  return performance.now() - t0;
}

async function p50(label: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < requests; i++) times.push(await ask());
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)]!;
  process.stderr.write(`${label}: p50 ${median.toFixed(1)} ms, p90 ${times[Math.floor(times.length * 0.9)]!.toFixed(1)} ms over ${requests} requests\n`);
  return median;
}

async function job(id: string): Promise<{ status: string; progress: { step: number } }> {
  return (await (await fetch(`${url}/admin/fine-tunes/${id}`, { headers: auth })).json()) as { status: string; progress: { step: number } };
}

try {
  for (let i = 0; i < 5; i++) await ask(); // warm-up
  const idle = await p50('idle');

  const form = new FormData();
  form.append('base_model', baseId);
  form.append('hyperparameters', JSON.stringify({ max_steps: 10_000, checkpoint_every: 50 }));
  form.append('training_file', new Blob([new Uint8Array(readFileSync(path.join(FIX, 'slake.jsonl')))]), 'cases.jsonl');
  for (const name of readdirSync(path.join(FIX, 'images')))
    form.append('images', new Blob([new Uint8Array(readFileSync(path.join(FIX, 'images', name)))]), name);
  const created = (await (await fetch(`${url}/admin/fine-tunes`, { method: 'POST', headers: auth, body: form })).json()) as { id: string };
  // Measure while GRPO steps are being taken, not while the worker starts or scores the base model.
  const deadline = Date.now() + 300_000;
  for (;;) {
    const j = await job(created.id);
    if (j.status === 'running' && j.progress.step >= 1) break;
    if (j.status === 'failed' || Date.now() > deadline) throw new Error(`the job did not start training: ${JSON.stringify(j)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  const stepBefore = (await job(created.id)).progress.step;
  const training = await p50('training');
  const stepAfter = (await job(created.id)).progress.step;
  process.stderr.write(`GRPO steps taken while measuring: ${stepAfter - stepBefore}\n`);
  await fetch(`${url}/admin/fine-tunes/${created.id}/cancel`, { method: 'POST', headers: auth });
  for (let j = await job(created.id); j.status === 'running'; j = await job(created.id)) await new Promise((r) => setTimeout(r, 250));
  const idleAgain = await p50('idle again');

  const base = Math.min(idle, idleAgain);
  console.log(`finetune p50_idle_ms=${base.toFixed(1)} p50_training_ms=${training.toFixed(1)} ratio=${(training / base).toFixed(2)}`);
} finally {
  await fineTunes.close();
  await server.shutdown('bench done');
  rmSync(root, { recursive: true, force: true });
}
