// Starts and stops the fine-tune test server as a real child process, and small HTTP helpers.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export const ADMIN_KEY = 'admin-key-0123456789abcdef';
export const CLINICIAN_KEY = 'clinician-key-0123456789';
export const ADMIN = { Authorization: `Bearer ${ADMIN_KEY}` };
export const CLINICIAN = { Authorization: `Bearer ${CLINICIAN_KEY}` };

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** Everything the server printed (JSON log lines); never shown unless a test fails. */
  output(): string;
}

export async function startFineTuneServer(env: { dataDir: string; modelsDir: string; extra?: Record<string, string> }): Promise<ServerProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/jobs/support/fine-tune-server.ts'], {
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      CLINVQA_API_KEYS: `clinician:${CLINICIAN_KEY},admin:${ADMIN_KEY}`,
      CLINVQA_DATA_DIR: env.dataDir,
      CLINVQA_MODELS_DIR: env.modelsDir,
      CLINVQA_LOG_LEVEL: 'warn',
      ...env.extra,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${out}`)), 30_000);
    const check = () => {
      const m = /FT_SERVER_PORT=(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    child.stdout!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${out}`));
    });
  });
  return { child, url: `http://127.0.0.1:${port}`, output: () => out };
}

export function killHard(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

export async function getJson<T = Record<string, unknown>>(url: string, headers: Record<string, string> = ADMIN): Promise<T> {
  const res = await fetch(url, { headers });
  if (!res.ok) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** Polls until `ok(value)` or the deadline. */
export async function waitFor<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await read();
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)?.slice(0, 2000)}`);
}

/** The fixture cases and their images as multipart form data (images as separate parts). */
export function fixtureUpload(fields: Record<string, string>, jsonl = readFileSync('test/fixtures/vqa/vqa-rad.jsonl')): FormData {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  form.append('training_file', new Blob([jsonl]), 'cases.jsonl');
  const dir = 'test/fixtures/vqa/images';
  for (const name of readdirSync(dir)) form.append('images', new Blob([readFileSync(path.join(dir, name))]), name);
  return form;
}
