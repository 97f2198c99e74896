// Boot behaviour of the real entry point (src/main.ts with the ONNX runtime loader).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function boot(env: Record<string, string>, untilListening: boolean): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { CLINVQA_API_KEYS: _k, CLINVQA_INSECURE_DEV: _i, ...base } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: repo, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let signalled = false;
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    if (untilListening && !signalled && stdout.includes('"msg":"listening"')) {
      signalled = true;
      child.kill('SIGTERM');
    }
  });
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })));
}

test('with no API keys the server refuses to start and says how to fix it', { timeout: 60_000 }, async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-main-'));
  try {
    const { code, stdout, stderr } = await boot({ PORT: '0', CLINVQA_DATA_DIR: path.join(root, 'var'), CLINVQA_MODELS_DIR: path.join(root, 'models') }, false);
    assert.equal(code, 78);
    assert.match(stderr, /refusing to start: No API keys configured/);
    assert.match(stderr, /CLINVQA_INSECURE_DEV=1/);
    assert.ok(!stdout.includes('listening'));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('with CLINVQA_INSECURE_DEV=1 it starts, warns that auth is off, and stops on SIGTERM', { timeout: 60_000 }, async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-main-'));
  try {
    const { code, stdout, stderr } = await boot(
      { PORT: '0', HOST: '127.0.0.1', CLINVQA_INSECURE_DEV: '1', CLINVQA_DATA_DIR: path.join(root, 'var'), CLINVQA_MODELS_DIR: path.join(root, 'models') },
      true,
    );
    assert.equal(code, 0, stderr);
    assert.match(stderr, /authentication is OFF/);
    assert.match(stdout, /"auth":"DISABLED/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

/** The production start command as the Dockerfile runs it (exec-form CMD). */
function dockerfileCommand(): string[] {
  const dockerfile = readFileSync(path.join(repo, 'Dockerfile'), 'utf8');
  const line = dockerfile.split('\n').find((l) => l.startsWith('CMD '));
  assert.ok(line, 'the Dockerfile has a CMD');
  const command = JSON.parse(line.slice(4)) as unknown;
  assert.ok(
    Array.isArray(command) && command.every((a) => typeof a === 'string'),
    'CMD is in exec form (a JSON array), so no shell stands between the signal and the server',
  );
  return command as string[];
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

test("SIGTERM to the Dockerfile's start command drains, exits 0 and leaves nothing listening", { timeout: 90_000 }, async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-start-'));
  const [command, ...args] = dockerfileCommand();
  const key = 'clinician-start-test-key-0123';
  // Its own process group, so that whatever it starts can be cleaned up even if it outlives it.
  const child = spawn(command!, args, {
    cwd: repo,
    detached: true,
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      CLINVQA_API_KEYS: `clinician:${key}`,
      CLINVQA_DATA_DIR: path.join(root, 'var'),
      CLINVQA_MODELS_DIR: path.join(repo, 'models'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        const m = /"msg":"listening".*?"port":(\d+)/.exec(stdout);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', () => reject(new Error(`server exited early: ${stderr}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    assert.equal((await fetch(`${url}/readyz`)).status, 200);

    const form = () => {
      const f = new FormData();
      f.append('image', new Blob([readFileSync(path.join(repo, 'test/fixtures/vqa/images/synpic19853.jpg'))]), 'x.jpg');
      f.append('question', 'Is there a fracture?');
      return f;
    };
    const inflight = Array.from({ length: 4 }, () => fetch(`${url}/v1/vqa`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form() }));
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(child.pid !== undefined && process.kill(child.pid, 'SIGTERM'));
    for (const res of await Promise.all(inflight)) {
      assert.ok(res.status === 200 || (res.status === 503 && res.headers.get('retry-after') !== null), `${res.status}: ${await res.text()}`);
    }
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running 45 s after SIGTERM'), 45_000))]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, /shutting down: draining/);
    assert.match(stdout, /"msg":"shut down"/);
    assert.equal(await canConnect(port), false, 'no process is left listening on the port');
  } finally {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone: nothing was left behind
    }
    rmSync(root, { recursive: true, force: true });
  }
});
