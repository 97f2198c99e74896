// Serving benchmark (`npm run bench:serve`): the real server (src/main.ts, as a child process, so
// the load generator does not share its event loop) on real model packages, driven by autocannon
// with a real radiograph at 1, 4 and 16 concurrent clients — once with dynamic batching on and
// once with it off (CLINVQA_BATCHING=0), in one run. Prints throughput and p50/p99 latency for
// each point; the last line is machine-readable: `serve batch_speedup_c16=<ratio>` (throughput
// with batching / without, at 16 clients).
//
// Options:
//   --models <dir>        packages to serve (default: models/, the shipped checkpoints)
//   --scratch <preset>    no trained package at hand: serve an UNTRAINED package of this preset
//                         (random weights, built into a temp dir). Its answers are noise and it
//                         always generates to the token cap, so only its throughput means anything.
//   --duration <s>        seconds per point (default 15), after a warm-up
//   --image <file>        default test/fixtures/vqa/images/synpic19853.jpg (VQA-RAD, CC0)
//   --max-tokens <n>      the requests' max_tokens (default 64, the runtime's cap)
//   --max-batch <n>       CLINVQA_MAX_BATCH (default 16)
//   --max-wait-ms <n>     CLINVQA_BATCH_MAX_WAIT_MS (default 10)
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';

// autocannon ships no type declarations; these are the parts used here.
interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  requests: { total: number };
  latency: { p50: number; p99: number };
}
const autocannon = createRequire(import.meta.url)('autocannon') as (options: Record<string, unknown>) => Promise<AutocannonResult>;

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONCURRENCY = [1, 4, 16] as const;

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: path.join(repo, 'models') },
    scratch: { type: 'string' },
    duration: { type: 'string', default: '15' },
    image: { type: 'string', default: path.join(repo, 'test/fixtures/vqa/images/synpic19853.jpg') },
    'max-tokens': { type: 'string', default: '64' },
    'max-batch': { type: 'string', default: '16' },
    'max-wait-ms': { type: 'string', default: '10' },
  },
});

interface Point {
  batching: boolean;
  clients: number;
  requests: number;
  throughput: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Builds an untrained package of `preset` (random weights, the shipped tokenizer) in `dir`. */
async function scratchPackage(dir: string, preset: string): Promise<void> {
  const { VqaTokenizer } = await import('../src/data/tokenizer.ts');
  const { initialModel } = await import('../src/training/model-init.ts');
  const { exportModelPackage } = await import('../src/registry/package-export.ts');
  const tokenizerPath = path.join(repo, 'assets/tokenizer.json');
  const tokenizer = await VqaTokenizer.load(tokenizerPath);
  const model = await initialModel('scratch', preset, tokenizer.vocabSize, 1);
  await exportModelPackage(path.join(dir, `untrained-${preset}`), {
    config: model.config,
    specs: model.specs,
    weights: model.weights,
    tokenizerJson: await readFile(tokenizerPath),
    manifest: {
      id: `untrained-${preset}`,
      version: '0.0.0',
      parent: null,
      method: 'base',
      training: { note: 'untrained weights for the serving benchmark' },
      seed: 1,
      dataset: { name: 'none', sha256: '0'.repeat(64) },
      eval: {},
    },
  });
}

/** Starts src/main.ts on a free port; resolves with its port once it listens. */
function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; port: number; models: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not report listening within 180 s:\n${stderr.slice(-2000)}`));
    }, 180_000);
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      const line = stdout.split('\n').find((l) => l.includes('"msg":"listening"'));
      if (line) {
        const parsed = JSON.parse(line) as { port: number; models: string[] };
        clearTimeout(timer);
        resolve({ child, port: parsed.port, models: parsed.models });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${stderr.slice(-2000)}`)));
  });
}

function stopServer(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

function drive(url: string, key: string, body: string, connections: number, duration: number): Promise<AutocannonResult> {
  return autocannon({
    url: `${url}/v1/vqa`,
    method: 'POST',
    connections,
    duration,
    timeout: 120,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
  });
}

async function main(): Promise<void> {
  const duration = Number(args.duration);
  const image = readFileSync(args.image!);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-bench-serve-'));
  let modelsDir = path.resolve(args.models!);
  if (args.scratch) {
    modelsDir = path.join(tmp, 'models');
    console.log(`building an UNTRAINED "${args.scratch}" package (throughput only; answers are noise)`);
    await scratchPackage(modelsDir, args.scratch);
  }
  const key = randomBytes(24).toString('hex');
  const body = JSON.stringify({ image: image.toString('base64'), question: 'Is there evidence of pneumothorax?', max_tokens: Number(args['max-tokens']) });
  const points: Point[] = [];
  try {
    for (const batching of [true, false]) {
      const { child, port, models } = await startServer({
        PORT: '0',
        HOST: '127.0.0.1',
        CLINVQA_API_KEYS: `clinician:${key}`,
        CLINVQA_DATA_DIR: path.join(tmp, `var-${batching ? 'on' : 'off'}`),
        CLINVQA_MODELS_DIR: modelsDir,
        CLINVQA_BATCHING: batching ? '1' : '0',
        CLINVQA_MAX_BATCH: args['max-batch']!,
        CLINVQA_BATCH_MAX_WAIT_MS: args['max-wait-ms']!,
        CLINVQA_MAX_QUEUE: '1024',
        CLINVQA_REQUEST_TIMEOUT_MS: '300000',
        CLINVQA_LOG_LEVEL: 'info', // the 'listening' line (info) carries the port
      });
      try {
        if (models.length === 0) throw new Error(`no model package in ${modelsDir}; train one (npm run train:sft) or pass --scratch small`);
        if (batching) console.log(`models: ${models.join(', ')} (the A/B table spreads traffic over them)`);
        const url = `http://127.0.0.1:${port}`;
        await drive(url, key, body, 4, 3); // warm-up: sessions, allocator, JIT
        for (const clients of CONCURRENCY) {
          const r = await drive(url, key, body, clients, duration);
          const point: Point = {
            batching,
            clients,
            requests: r.requests.total,
            throughput: r.requests.total / r.duration,
            p50: r.latency.p50,
            p99: r.latency.p99,
            errors: r.errors + r.timeouts + r.non2xx,
          };
          points.push(point);
          console.log(
            `serve batching=${batching ? 'on ' : 'off'} clients=${String(clients).padStart(2)}  ` +
              `throughput=${point.throughput.toFixed(2)} req/s  p50=${point.p50.toFixed(0)} ms  p99=${point.p99.toFixed(0)} ms  ` +
              `requests=${point.requests} errors=${point.errors}`,
          );
        }
      } finally {
        await stopServer(child);
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const at16 = (batching: boolean) => points.find((p) => p.batching === batching && p.clients === 16)!;
  if (points.some((p) => p.errors > 0)) console.log('WARNING: some requests failed; see errors= above');
  console.log(`serve batch_speedup_c16=${(at16(true).throughput / at16(false).throughput).toFixed(2)}`);
}

await main();
