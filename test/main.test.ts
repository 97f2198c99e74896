// Boot behaviour of the real entry point (src/main.ts with the ONNX runtime loader).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
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
