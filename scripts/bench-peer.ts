// Side by side with the peer (`npm run bench:peer`): the same Qwen2-VL model served by our server
// and by a minimal transformers.js HTTP server (scripts/lib/transformers-js-vqa-server.ts: the
// model card's snippet behind an express route, one request at a time as they come), each as a
// child process on the same machine with the same ORT thread settings, driven by the same closed-
// loop clients sending the same validation questions with their images (greedy, max_tokens fixed).
// Per side and model: single-request latency p50 (1 client) and throughput at 1, 4 and 16 clients.
// Two models: the small reference folder (../shared/reference/qwen2-vl-tiny) and a larger random-
// weight Qwen2-VL written here (text hidden 896, 24 layers, 14 heads / 2 KV heads, intermediate
// 4864, vocabulary 151936, tied embeddings: the 0.5B-class text shape; a 4-block vision tower).
// Last line: `peer small_c1=<ours/theirs latency> small_c16=<ours/theirs throughput> large_c16=<…>`.
//
// Options:
//   --threads <n>        ORT intra-op threads for both servers (default: the server's default, cores − 1, 1 to 4)
//   --duration <s>       seconds per point on the small model (default 10)
//   --large-duration <s> seconds per point on the large model (default 30)
//   --max-tokens <n>     new tokens per request (default 16)
//   --questions <n>      validation questions cycled through (default 16)
//   --data <jsonl>       default ../shared/data/slake/validation.jsonl
//   --skip-large         the small model only
//   --skip-small         the large model only (no ratio line)
//   --side ours|theirs   one side only (no ratio line): for checking one server on its own
//   --ours server|engine server (default): src/main.ts serving the folder; engine: our runtime and
//                        batcher behind a bare express route (scripts/lib/engine-vqa-server.ts)
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { defaultIntraOpThreads } from '../src/config.ts';
import { writeRandomQwen2VLFolder } from '../src/engine/architectures/qwen2-vl/random-folder.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CONCURRENCY = [1, 4, 16] as const;
const REFERENCE = path.resolve(repo, '../shared/reference/qwen2-vl-tiny');
const FOLDER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'chat_template.json', 'preprocessor_config.json', 'generation_config.json'];

const { values: args } = parseArgs({
  options: {
    threads: { type: 'string', default: String(defaultIntraOpThreads()) },
    duration: { type: 'string', default: '10' },
    'large-duration': { type: 'string', default: '30' },
    'max-tokens': { type: 'string', default: '16' },
    questions: { type: 'string', default: '16' },
    data: { type: 'string', default: path.resolve(repo, '../shared/data/slake/validation.jsonl') },
    'skip-large': { type: 'boolean', default: false },
    'skip-small': { type: 'boolean', default: false },
    side: { type: 'string', default: 'both' },
    ours: { type: 'string', default: 'server' },
  },
});

/** The larger model: Qwen2-0.5B's text shape under a small vision tower, token ids of the reference tokenizer. */
function largeConfig(): Record<string, unknown> {
  return {
    architectures: ['Qwen2VLForConditionalGeneration'],
    model_type: 'qwen2_vl',
    hidden_size: 896,
    num_hidden_layers: 24,
    num_attention_heads: 14,
    num_key_value_heads: 2,
    intermediate_size: 4864,
    vocab_size: 151936,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000,
    rope_scaling: { type: 'mrope', mrope_section: [8, 12, 12] },
    max_position_embeddings: 32768,
    tie_word_embeddings: true,
    hidden_act: 'silu',
    bos_token_id: 496,
    eos_token_id: 498,
    vision_start_token_id: 505,
    vision_end_token_id: 506,
    vision_token_id: 507,
    image_token_id: 508,
    video_token_id: 509,
    vision_config: {
      depth: 4,
      embed_dim: 640,
      num_heads: 10,
      mlp_ratio: 4,
      in_channels: 3,
      hidden_size: 896,
      hidden_act: 'quick_gelu',
      patch_size: 14,
      spatial_merge_size: 2,
      temporal_patch_size: 2,
    },
  };
}

/**
 * The reference tokenizer has 512 ids; a random 151936-row model samples ids far past them, which no
 * tokenizer can decode. Real checkpoints have the same gap only at the top (151665 tokens, 151936
 * rows) and trained weights never pick those ids. Filling the BPE vocabulary with unreachable entries
 * (no merge produces them; ASCII letters decode as themselves through the byte-level decoder) makes
 * every id decodable on both sides without changing how any text encodes.
 */
async function padTokenizerVocab(file: string, vocabSize: number): Promise<void> {
  const json = JSON.parse(await readFile(file, 'utf8')) as { model: { vocab: Record<string, number> }; added_tokens: { id: number }[] };
  const taken = new Set([...Object.values(json.model.vocab), ...json.added_tokens.map((t) => t.id)]);
  const names = new Set(Object.keys(json.model.vocab));
  for (let id = 0; id < vocabSize; id++) {
    if (taken.has(id)) continue;
    let name = 'zzq';
    for (let n = id; n > 0; n = Math.floor(n / 26)) name += String.fromCharCode(97 + (n % 26));
    while (names.has(name)) name += 'Q';
    names.add(name);
    json.model.vocab[name] = id;
  }
  await writeFile(file, JSON.stringify(json));
}

interface Question {
  body: string;
}

async function loadQuestions(file: string, n: number, maxTokens: number): Promise<Question[]> {
  const lines = (await readFile(file, 'utf8'))
    .split('\n')
    .filter((l) => l.trim())
    .slice(0, n);
  return Promise.all(
    lines.map(async (line) => {
      const rec = JSON.parse(line) as { image: string; question: string };
      const image = await readFile(path.join(path.dirname(file), rec.image));
      return { body: JSON.stringify({ image: image.toString('base64'), question: rec.question, max_tokens: maxTokens, temperature: 0 }) };
    }),
  );
}

interface Server {
  child: ChildProcess;
  url: string;
  headers: Record<string, string>;
}

/** Spawns `argv` and resolves once a stdout line yields the port (`portOf`). */
function spawnServer(
  argv: string[],
  env: Record<string, string>,
  portOf: (line: string) => number | undefined,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, argv, { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${argv.join(' ')}: not listening within 600 s:\n${stderr.slice(-2000)}`));
    }, 600_000);
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      for (const line of stdout.split('\n')) {
        const port = portOf(line);
        if (port !== undefined) {
          clearTimeout(timer);
          resolve({ child, port });
          return;
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`${argv.join(' ')} exited (${code}) before listening:\n${stderr.slice(-3000)}`)));
  });
}

const children = new Set<ChildProcess>();
// A bench stopped half-way (Ctrl-C, an error) must not leave model servers running.
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Our server (src/main.ts) serving the Hugging Face folder `folder` as its only model. */
async function startOurs(folder: string, tmp: string, threads: number): Promise<Server> {
  const key = randomBytes(24).toString('hex');
  const modelsDir = path.join(tmp, `ours-models-${path.basename(folder)}`);
  await mkdir(modelsDir, { recursive: true });
  await symlinkDir(folder, path.join(modelsDir, path.basename(folder)));
  const { child, port } = await spawnServer(
    ['--import', 'tsx', 'src/main.ts'],
    {
      PORT: '0',
      HOST: '127.0.0.1',
      CLINVQA_API_KEYS: `clinician:${key}`,
      CLINVQA_DATA_DIR: path.join(tmp, `ours-var-${path.basename(folder)}`),
      CLINVQA_MODELS_DIR: modelsDir,
      CLINVQA_INTRA_OP_THREADS: String(threads),
      CLINVQA_MAX_QUEUE: '1024',
      CLINVQA_REQUEST_TIMEOUT_MS: '600000',
      CLINVQA_LOG_LEVEL: 'info',
    },
    (line) => (line.includes('"msg":"listening"') ? (JSON.parse(line) as { port: number }).port : undefined),
  );
  return { child, url: `http://127.0.0.1:${port}`, headers: { authorization: `Bearer ${key}` } };
}

async function symlinkDir(target: string, at: string): Promise<void> {
  const { symlink } = await import('node:fs/promises');
  await symlink(path.resolve(target), at, 'dir');
}

/** Our runtime and batcher without the rest of the server. */
async function startOursEngine(folder: string, tmp: string, threads: number): Promise<Server> {
  const { child, port } = await spawnServer(
    [
      '--import',
      'tsx',
      'scripts/lib/engine-vqa-server.ts',
      '--model',
      folder,
      '--data-dir',
      path.join(tmp, `engine-var-${path.basename(folder)}`),
      '--port',
      '0',
      '--threads',
      String(threads),
    ],
    {},
    (line) => (line.startsWith('listening ') ? Number(line.slice('listening '.length)) : undefined),
  );
  return { child, url: `http://127.0.0.1:${port}`, headers: {} };
}

/** The transformers.js server on the exported folder. */
async function startTheirs(exported: string, threads: number): Promise<Server> {
  const { child, port } = await spawnServer(
    ['--import', 'tsx', 'scripts/lib/transformers-js-vqa-server.ts', '--model', exported, '--port', '0', '--threads', String(threads)],
    {},
    (line) => (line.startsWith('listening ') ? Number(line.slice('listening '.length)) : undefined),
  );
  return { child, url: `http://127.0.0.1:${port}`, headers: {} };
}

interface Point {
  clients: number;
  requests: number;
  throughput: number;
  p50: number;
  p90: number;
  meanCompletionTokens: number;
  errors: number;
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** `clients` closed loops (send, wait, send) over the questions for `seconds`; requests still running at the end are awaited and counted. */
async function drive(server: Server, questions: Question[], clients: number, seconds: number): Promise<Point> {
  let next = 0;
  const latencies: number[] = [];
  let tokens = 0;
  let errors = 0;
  let lastError = '';
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      const q = questions[next++ % questions.length];
      const t0 = performance.now();
      try {
        const res = await fetch(`${server.url}/v1/vqa`, { method: 'POST', headers: { 'content-type': 'application/json', ...server.headers }, body: q.body });
        const json = (await res.json()) as { usage?: { completion_tokens: number } };
        if (!res.ok) throw new Error(`${res.status} ${JSON.stringify(json).slice(0, 300)}`);
        latencies.push(performance.now() - t0);
        tokens += json.usage?.completion_tokens ?? 0;
      } catch (e) {
        errors++;
        lastError = (e as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, loop));
  const elapsed = (performance.now() - started) / 1000;
  if (errors > 0) console.log(`  (${errors} failed requests; last: ${lastError})`);
  latencies.sort((a, b) => a - b);
  return {
    clients,
    requests: latencies.length,
    throughput: latencies.length / elapsed,
    p50: quantile(latencies, 0.5),
    p90: quantile(latencies, 0.9),
    meanCompletionTokens: latencies.length ? tokens / latencies.length : 0,
    errors,
  };
}

function report(label: string, side: string, p: Point): void {
  console.log(
    `peer ${label.padEnd(5)} ${side.padEnd(6)} clients=${String(p.clients).padStart(2)}  throughput=${p.throughput.toFixed(2)} req/s  ` +
      `p50=${p.p50.toFixed(0)} ms  p90=${p.p90.toFixed(0)} ms  requests=${p.requests}  tokens/req=${p.meanCompletionTokens.toFixed(1)}  errors=${p.errors}`,
  );
}

/**
 * Both servers are up at once (an idle one costs nothing) and each concurrency level is measured on
 * ours and then on theirs, so a change in the machine's background load lands on both sides of a
 * ratio rather than on one side's whole series.
 */
async function measureBoth(label: string, sides: { name: 'ours' | 'theirs'; server: Server }[], questions: Question[], seconds: number) {
  const out: Record<'ours' | 'theirs', Point[]> = { ours: [], theirs: [] };
  try {
    for (const s of sides) await drive(s.server, questions, 2, Math.min(5, seconds)); // warm-up: sessions, allocator, JIT
    for (const c of CONCURRENCY) {
      for (const s of sides) {
        const p = await drive(s.server, questions, c, seconds);
        out[s.name].push(p);
        report(label, s.name, p);
      }
    }
    return out;
  } finally {
    for (const s of sides) await stop(s.server.child);
  }
}

const run = promisify(execFile);

async function exportForTransformersJs(folder: string, out: string): Promise<void> {
  await run(process.execPath, ['--import', 'tsx', 'scripts/export-transformers-js.ts', '--model', folder, '--out', out], { cwd: repo, maxBuffer: 1 << 24 });
}

async function benchModel(label: string, folder: string, tmp: string, questions: Question[], seconds: number, threads: number) {
  const exported = path.join(tmp, `${label}-transformers-js`);
  await exportForTransformersJs(folder, exported);
  const sides: { name: 'ours' | 'theirs'; server: Server }[] = [];
  try {
    if (args.side !== 'theirs') sides.push({ name: 'ours', server: await (args.ours === 'engine' ? startOursEngine : startOurs)(folder, tmp, threads) });
    if (args.side !== 'ours') sides.push({ name: 'theirs', server: await startTheirs(exported, threads) });
  } catch (error) {
    for (const s of sides) await stop(s.server.child);
    throw error;
  }
  return measureBoth(label, sides, questions, seconds);
}

async function main(): Promise<void> {
  const threads = Number(args.threads);
  const maxTokens = Number(args['max-tokens']);
  const questions = await loadQuestions(args.data!, Number(args.questions), maxTokens);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'clinvqa-bench-peer-'));
  console.log(
    `bench:peer  ours=${args.ours === 'engine' ? 'our runtime + batcher (no server)' : 'our server (src/main.ts)'}  threads=${threads}  max_tokens=${maxTokens}  questions=${questions.length} (${args.data})  cores=${os.availableParallelism()}`,
  );
  try {
    const small = args['skip-small'] ? undefined : await benchModel('small', REFERENCE, tmp, questions, Number(args.duration), threads);
    let large: Awaited<ReturnType<typeof benchModel>> | undefined;
    if (!args['skip-large']) {
      const folder = path.join(tmp, 'qwen2-vl-0.5b-random');
      console.log('writing the random-weight 0.5B-class Qwen2-VL folder …');
      await writeRandomQwen2VLFolder(folder, largeConfig(), { dtype: 'BF16', seed: 7 });
      for (const f of FOLDER_FILES) await copyFile(path.join(REFERENCE, f), path.join(folder, f));
      await padTokenizerVocab(path.join(folder, 'tokenizer.json'), largeConfig().vocab_size as number);
      large = await benchModel('large', folder, tmp, questions, Number(args['large-duration']), threads);
    }
    if (args.side !== 'both' || !small) return;
    const at = (points: Point[], c: number) => points.find((p) => p.clients === c)!;
    const parts = [
      `small_c1=${(at(small.ours, 1).p50 / at(small.theirs, 1).p50).toFixed(2)}`,
      `small_c16=${(at(small.ours, 16).throughput / at(small.theirs, 16).throughput).toFixed(2)}`,
    ];
    if (large) {
      console.log(`peer large_c1 latency ratio (ours/theirs) ${(at(large.ours, 1).p50 / at(large.theirs, 1).p50).toFixed(2)}`);
      parts.push(`large_c16=${(at(large.ours, 16).throughput / at(large.theirs, 16).throughput).toFixed(2)}`);
    }
    console.log(`peer ${parts.join(' ')}`);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

await main();
