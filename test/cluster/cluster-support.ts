// Real processes of a cluster deployment on loopback: server replicas (`src/main.ts`) and trainer
// workers (`src/worker-main.ts`) sharing one Postgres and one data dir, as the acceptance asks.
import { spawn, type ChildProcess } from 'node:child_process';
import { ADMIN_KEY, CLINICIAN_KEY } from '../jobs/support/server-process.ts';
import { freePort } from '../helpers/embedded-postgres.ts';

export interface Proc {
  name: string;
  child: ChildProcess;
  output(): string;
}

export interface Replica extends Proc {
  url: string;
  port: number;
}

export interface ClusterEnv {
  databaseUrl: string;
  dataDir: string;
  modelsDir: string;
  leaseS?: number;
}

function env(c: ClusterEnv, name: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    HOST: '127.0.0.1',
    CLINVQA_API_KEYS: `clinician:${CLINICIAN_KEY},admin:${ADMIN_KEY}`,
    CLINVQA_DATABASE_URL: c.databaseUrl,
    CLINVQA_DATA_DIR: c.dataDir,
    CLINVQA_MODELS_DIR: c.modelsDir,
    CLINVQA_JOB_LEASE_S: String(c.leaseS ?? 60),
    CLINVQA_INSTANCE_ID: name,
    CLINVQA_LOG_LEVEL: 'warn',
    CLINVQA_INTRA_OP_THREADS: '1',
    ...extra,
  };
}

function launch(name: string, script: string, environment: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', script], { env: environment, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-200_000)));
  child.stderr!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-200_000)));
  return { name, child, output: () => out };
}

export async function startReplica(c: ClusterEnv, name: string, port?: number): Promise<Replica> {
  const p = port ?? (await freePort());
  const proc = launch(name, 'src/main.ts', env(c, name, { PORT: String(p) }));
  const url = `http://127.0.0.1:${p}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`replica ${name} exited:\n${proc.output()}`);
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (Date.now() > deadline) throw new Error(`replica ${name} did not become ready:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return { ...proc, url, port: p };
}

export async function startWorker(c: ClusterEnv, name: string): Promise<Proc> {
  const proc = launch(name, 'src/worker-main.ts', env(c, name, { CLINVQA_LOG_LEVEL: 'info' }));
  const deadline = Date.now() + 60_000;
  while (!/trainer worker ready/.test(proc.output())) {
    if (proc.child.exitCode !== null) throw new Error(`worker ${name} exited:\n${proc.output()}`);
    if (Date.now() > deadline) throw new Error(`worker ${name} did not start:\n${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return proc;
}

export function stopHard(p: Proc): Promise<void> {
  return new Promise((resolve) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve();
    p.child.once('exit', () => resolve());
    p.child.kill('SIGKILL');
  });
}
