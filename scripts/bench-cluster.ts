// Cluster benchmark (`npm run bench:cluster`): the shipped models served by ONE replica vs TWO
// replicas of a cluster deployment (one embedded Postgres), both behind the same loopback
// round-robin proxy and driven by autocannon with a real radiograph. The CPU budget is the same in
// both: the single replica is pinned (taskset) to both cores, each of the two replicas to one core,
// and each replica gets one ORT thread. This machine has 2 cores shared with the load generator and
// the proxy, so the point is correctness and overhead, not speed-up. Then the latency cost of
// Postgres on the admin paths: PUT /admin/ab and GET /admin/ab/report, embedded (file/SQLite) vs
// cluster (Postgres). Last line: `cluster replicas=2 rps_ratio=<r> lost=<n>` (lost = requests that
// did not get a 2xx answer, errors and timeouts included, over both runs).
//
// Options: --duration <s> per point (default 15), --connections <n> (default 16).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, startPostgres } from '../test/helpers/embedded-postgres.ts';

interface AutocannonResult {
  errors: number;
  timeouts: number;
  non2xx: number;
  requests: { total: number; average: number };
  latency: { p50: number; p99: number };
  duration: number;
  statusCodeStats?: Record<string, { count: number }>;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (options: Record<string, unknown>) => Promise<AutocannonResult>;

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { duration: { type: 'string', default: '15' }, connections: { type: 'string', default: '16' } } });
const duration = Number(args.duration);
const connections = Number(args.connections);
const KEY = 'bench-admin-key-0123456789';
const cores = os.availableParallelism();

interface Replica {
  child: ChildProcess;
  url: string;
  out: () => string;
}

async function startReplica(env: Record<string, string>, cpus: string): Promise<Replica> {
  const port = await freePort();
  const child = spawn('taskset', ['-c', cpus, process.execPath, '--import', 'tsx', 'src/main.ts'], {
    cwd: repo,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: String(port),
      CLINVQA_API_KEYS: `admin:${KEY}`,
      CLINVQA_LOG_LEVEL: 'warn',
      CLINVQA_INTRA_OP_THREADS: '1',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`replica exited:\n${out}`);
    if (
      await fetch(`${url}/readyz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (i > 600) throw new Error(`replica not ready:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { child, url, out: () => out };
}

async function stop(r: Replica): Promise<void> {
  if (r.child.exitCode !== null) return;
  const exited = new Promise((resolve) => r.child.once('exit', resolve));
  r.child.kill('SIGTERM');
  await exited;
}

/** A plain round-robin HTTP proxy on loopback (what nginx does in deploy/compose.yaml). */
async function roundRobin(targets: string[]): Promise<{ url: string; close(): Promise<void> }> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  let next = 0;
  const server = http.createServer((req, res) => {
    const target = new URL(targets[next++ % targets.length]!);
    const upstream = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers, agent }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (error) => {
      console.error(`proxy: upstream ${target.host} failed: ${error.message}`);
      res.writeHead(502);
      res.end();
    });
    req.pipe(upstream);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        agent.destroy();
        server.close(() => resolve());
      }),
  };
}

function drive(url: string, body: string, conns: number, seconds: number): Promise<AutocannonResult> {
  let client = 0;
  return autocannon({
    url: `${url}/v1/vqa`,
    method: 'POST',
    connections: conns,
    duration: seconds,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body,
    // Sticky clients: each connection is one client id, as a ward's workstations would be.
    setupClient: (c: { setHeaders(h: Record<string, string>): void }) =>
      c.setHeaders({ 'content-type': 'application/json', authorization: `Bearer ${KEY}`, 'x-client-id': `bench-${client++}` }),
  });
}

async function timeAdmin(url: string, n: number): Promise<{ put: number; report: number }> {
  const put: number[] = [];
  const report: number[] = [];
  const models = (await (await fetch(`${url}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as { data: { id: string }[] };
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await fetch(`${url}/admin/ab`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ variants: models.data.map((m, j) => ({ model: m.id, weight: 1 + ((i + j) % 3) })) }),
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`PUT /admin/ab: ${res.status}`);
    put.push(performance.now() - t0);
    const t1 = performance.now();
    const rep = await fetch(`${url}/admin/ab/report`, { headers: { authorization: `Bearer ${KEY}` } });
    await rep.arrayBuffer();
    report.push(performance.now() - t1);
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return { put: median(put), report: median(report) };
}

const image = readFileSync(path.join(repo, 'test/fixtures/vqa/images/synpic19853.jpg'));
const body = JSON.stringify({ image: image.toString('base64'), question: 'Is there evidence of pneumothorax?', max_tokens: 64 });
const root = mkdtempSync(path.join(os.tmpdir(), 'bench-cluster-'));
const pg = await startPostgres();
const all = cores >= 2 ? `0-${cores - 1}` : '0';
let lost = 0;
try {
  const results: Record<string, AutocannonResult> = {};
  for (const replicas of [1, 2]) {
    const databaseUrl = await pg.newDatabase();
    const env = { CLINVQA_DATABASE_URL: databaseUrl, CLINVQA_DATA_DIR: path.join(root, `var-${replicas}`), CLINVQA_MODELS_DIR: path.join(repo, 'models') };
    const started =
      replicas === 1
        ? [await startReplica({ ...env, CLINVQA_INSTANCE_ID: 'solo' }, all)]
        : await Promise.all([0, 1].map((i) => startReplica({ ...env, CLINVQA_INSTANCE_ID: `r${i}` }, String(i % cores))));
    const proxy = await roundRobin(started.map((r) => r.url));
    try {
      await drive(proxy.url, body, 4, 3); // warm-up
      const r = await drive(proxy.url, body, connections, duration);
      results[replicas] = r;
      lost += r.non2xx + r.errors + r.timeouts;
      const rps = r.requests.total / r.duration;
      console.log(
        `replicas=${replicas} cpus=${replicas === 1 ? all : started.map((_, i) => i % cores).join('+')} clients=${connections}: ${rps.toFixed(1)} req/s, p50 ${r.latency.p50} ms, p99 ${r.latency.p99} ms, non-2xx ${r.non2xx}, errors ${r.errors}, timeouts ${r.timeouts}; status codes ${JSON.stringify(Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([code, v]) => [code, v.count])))}`,
      );
    } finally {
      await proxy.close();
      for (const s of started) await stop(s);
    }
  }

  // Admin paths: embedded (JSON file + SQLite) vs cluster (Postgres), one replica, nothing else running.
  const embedded = await startReplica({ CLINVQA_DATA_DIR: path.join(root, 'var-embedded'), CLINVQA_MODELS_DIR: path.join(repo, 'models') }, all);
  const embeddedTimes = await timeAdmin(embedded.url, 40).finally(() => stop(embedded));
  const clustered = await startReplica(
    {
      CLINVQA_DATABASE_URL: await pg.newDatabase(),
      CLINVQA_DATA_DIR: path.join(root, 'var-admin'),
      CLINVQA_MODELS_DIR: path.join(repo, 'models'),
      CLINVQA_INSTANCE_ID: 'admin',
    },
    all,
  );
  const clusterTimes = await timeAdmin(clustered.url, 40).finally(() => stop(clustered));
  console.log(
    `admin PUT /admin/ab p50: embedded ${embeddedTimes.put.toFixed(1)} ms, postgres ${clusterTimes.put.toFixed(1)} ms (+${(clusterTimes.put - embeddedTimes.put).toFixed(1)} ms)`,
  );
  console.log(
    `admin GET /admin/ab/report p50: embedded ${embeddedTimes.report.toFixed(1)} ms, postgres ${clusterTimes.report.toFixed(1)} ms (+${(clusterTimes.report - embeddedTimes.report).toFixed(1)} ms)`,
  );
  const ratio = results[2]!.requests.total / results[2]!.duration / (results[1]!.requests.total / results[1]!.duration);
  console.log(`cluster replicas=2 rps_ratio=${ratio.toFixed(2)} lost=${lost}`);
} finally {
  await pg.stop();
  rmSync(root, { recursive: true, force: true });
}
