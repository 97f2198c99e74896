// Decode-burst benchmark (`npm run bench:decode-burst`): does a burst of images that are cheap to
// send and expensive to decode (16-bit RGBA PNGs of one flat colour: a few hundred KB each,
// hundreds of MB of samples) slow down ordinary requests? The real server (src/main.ts, a child
// process) on the shipped models; one key sends ordinary requests one after another (a real
// radiograph), first idle, then while a second key sends the burst all at once. Per-key rate
// limits are off so that only the decoding stage stands between the burst and the others.
// The last line is machine-readable:
// `decode_burst idle_p50=<ms> burst_p50=<ms> ratio=<burst/idle> max_ratio=<slowest during/idle p50>`
// (the bar: ratio <= 3).
//
// Options:
//   --count <n>          large images in the burst (default 32)
//   --size <px>          their side (default 7071: 50 M pixels, the old default limit)
//   --pixel-limit <n>    CLINVQA_MAX_IMAGE_PIXELS for the run (default 50000000, so the burst is
//                        admitted and has to be decoded; at the 25 M default it is refused from its header)
//   --models <dir>       default models/
//   --samples <n>        ordinary requests while idle (default 20); during the burst they are sent
//                        one after another until the burst is over
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import sharp from 'sharp';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    count: { type: 'string', default: '32' },
    size: { type: 'string', default: '7071' },
    'pixel-limit': { type: 'string', default: '50000000' },
    models: { type: 'string', default: path.join(repo, 'models') },
    samples: { type: 'string', default: '20' },
  },
});

function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      const m = /"msg":"listening".*?"port":(\d+)/.exec(stdout);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${stderr.slice(-2000)}`)));
  });
}

async function ask(url: string, key: string, body: string): Promise<{ status: number; ms: number }> {
  const started = performance.now();
  const res = await fetch(`${url}/v1/vqa`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - started };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const count = Number(args.count);
  const size = Number(args.size);
  const samples = Number(args.samples);
  const large = await sharp({ create: { width: size, height: size, channels: 4, background: { r: 200, g: 30, b: 90, alpha: 0.5 } } })
    .toColourspace('rgb16')
    .png({ compressionLevel: 9 })
    .toBuffer();
  console.log(`burst image: ${size}x${size} 16-bit RGBA PNG, ${(large.length / 1024).toFixed(0)} KB, ${((size * size * 8) / 1e6).toFixed(0)} MB of samples`);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-bench-burst-'));
  const [normalKey, burstKey] = [randomBytes(16).toString('hex'), randomBytes(16).toString('hex')];
  const { child, port } = await startServer({
    PORT: '0',
    HOST: '127.0.0.1',
    CLINVQA_API_KEYS: `clinician:${normalKey},clinician:${burstKey}`,
    CLINVQA_DATA_DIR: path.join(tmp, 'var'),
    CLINVQA_MODELS_DIR: path.resolve(args.models!),
    CLINVQA_MAX_IMAGE_PIXELS: args['pixel-limit']!,
    CLINVQA_RATE_LIMIT_CLINICIAN: '0',
    CLINVQA_LOG_LEVEL: 'info',
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    const normal = JSON.stringify({
      image: readFileSync(path.join(repo, 'test/fixtures/vqa/images/synpic19853.jpg')).toString('base64'),
      question: 'Is there a fracture?',
      model: 'clinvqa-sft',
    });
    const heavy = JSON.stringify({ image: large.toString('base64'), question: 'Is there a fracture?', model: 'clinvqa-sft' });
    for (let i = 0; i < 5; i++) await ask(url, normalKey, normal); // warm-up
    const idle: number[] = [];
    for (let i = 0; i < samples; i++) idle.push((await ask(url, normalKey, normal)).ms);

    const burstStarted = performance.now();
    const burst = Array.from({ length: count }, () => ask(url, burstKey, heavy));
    let burstOver = false;
    const burstDone = Promise.all(burst).then((r) => {
      burstOver = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 100)); // the burst is in
    // Only requests sent while the burst is still being served count; at least `samples` of them
    // unless the burst is over first.
    const during: number[] = [];
    const statuses: number[] = [];
    while (!burstOver) {
      const r = await ask(url, normalKey, normal);
      statuses.push(r.status);
      during.push(r.ms);
    }
    const heavyResults = await burstDone;
    const burstMs = performance.now() - burstStarted;
    const tally = (xs: number[]) =>
      Object.entries(
        xs.reduce<Record<number, number>>((t, s) => {
          t[s] = (t[s] ?? 0) + 1;
          return t;
        }, {}),
      )
        .map(([s, n]) => `${s}×${n}`)
        .join(' ');
    const idleP50 = median(idle);
    const burstP50 = median(during);
    console.log(`idle: p50 ${idleP50.toFixed(1)} ms (n=${idle.length})`);
    console.log(
      `during the burst: p50 ${burstP50.toFixed(1)} ms, max ${Math.max(...during).toFixed(0)} ms (n=${during.length}; statuses ${tally(statuses)}; in order: ${during
        .slice(0, 8)
        .map((x) => x.toFixed(0))
        .join(' ')} …)`,
    );
    console.log(`burst: ${count} requests, statuses ${tally(heavyResults.map((r) => r.status))}, over after ${(burstMs / 1000).toFixed(1)} s`);
    console.log(
      `decode_burst idle_p50=${idleP50.toFixed(1)} burst_p50=${burstP50.toFixed(1)} ratio=${(burstP50 / idleP50).toFixed(2)} max_ratio=${(Math.max(...during) / idleP50).toFixed(1)}`,
    );
  } finally {
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
