// Graceful shutdown with a real process: SIGTERM while requests are in the model → they all
// finish with 200, new connections are refused, the audit log has every request, exit code 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { smallPng } from '../helpers/images.ts';
import { CLINICIAN_KEY, writeFakePackage } from '../helpers/test-app.ts';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function post(port: number, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/vqa',
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${CLINICIAN_KEY}`, 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

test('SIGTERM (even twice) drains in-flight requests, refuses new connections, then exits 0', { timeout: 60_000 }, async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-serve-'));
  try {
    writeFakePackage(path.join(root, 'models'), 'clinvqa-sft');
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/fake-server-main.ts'], {
      cwd: repo,
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        CLINVQA_API_KEYS: `clinician:${CLINICIAN_KEY}`,
        CLINVQA_DATA_DIR: path.join(root, 'var'),
        CLINVQA_MODELS_DIR: path.join(root, 'models'),
        CLINVQA_MAX_BATCH: '2',
        CLINVQA_BATCH_MAX_WAIT_MS: '0',
        FAKE_DELAY_MS: '400',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        const line = stdout.split('\n').find((l) => l.includes('"msg":"listening"'));
        if (line) resolve(JSON.parse(line).port as number);
      });
      child.on('exit', () => reject(new Error(`server exited early: ${stderr}`)));
    });

    const body = JSON.stringify({ image: (await smallPng()).toString('base64'), question: 'Normal?' });
    // Four requests: two batches of two, 400 ms each, so the last ones are still queued at SIGTERM.
    const inflight = Array.from({ length: 4 }, () => post(port, body));
    await new Promise((r) => setTimeout(r, 150));
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 50));
    child.kill('SIGTERM'); // an impatient second signal must not cut the drain short
    await new Promise((r) => setTimeout(r, 50));
    await assert.rejects(post(port, body), /ECONNREFUSED|ECONNRESET/, 'no new connections while draining');

    const results = await Promise.all(inflight);
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200, 200],
      results.map((r) => r.body).join('\n'),
    );
    assert.equal(await exited, 0, stderr);
    assert.match(stdout, /shutting down: draining/);
    assert.match(stdout, /"msg":"shut down"/);
    const audit = readFileSync(path.join(root, 'var', 'audit', 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n');
    assert.equal(audit.length, 4);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

interface Outcome {
  /** Sent (body fully written) before SIGTERM reached the server. */
  sentBeforeSignal: boolean;
  bodySent: boolean;
  status?: number;
  retryAfter?: string;
  error?: string;
}

/** One keep-alive client in a closed loop until the server refuses its connection (or `deadline`). */
async function keepAliveClient(
  port: number,
  body: string,
  agent: http.Agent,
  signalledAt: () => number | undefined,
  outcomes: Outcome[],
  deadline: number,
): Promise<void> {
  while (Date.now() < deadline) {
    const outcome = await new Promise<Outcome>((resolve) => {
      const o: Outcome = { sentBeforeSignal: false, bodySent: false };
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/vqa',
          method: 'POST',
          agent,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${CLINICIAN_KEY}`, 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          res.resume();
          res.on('end', () =>
            resolve({ ...o, status: res.statusCode ?? 0, ...(res.headers['retry-after'] ? { retryAfter: String(res.headers['retry-after']) } : {}) }),
          );
          res.on('error', (e: NodeJS.ErrnoException) => resolve({ ...o, error: e.code ?? e.message }));
        },
      );
      req.on('finish', () => {
        o.bodySent = true;
        o.sentBeforeSignal = signalledAt() === undefined;
      });
      req.on('error', (e: NodeJS.ErrnoException) => resolve({ ...o, error: e.code ?? e.message }));
      req.end(body);
    });
    outcomes.push(outcome);
    if (outcome.error === 'ECONNREFUSED') return;
  }
}

test('SIGTERM under 200 concurrent keep-alive clients: no request is reset; each gets its answer or 503 + Retry-After', { timeout: 60_000 }, async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-serve-load-'));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 250 });
  try {
    writeFakePackage(path.join(root, 'models'), 'clinvqa-sft');
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/fake-server-main.ts'], {
      cwd: repo,
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        CLINVQA_API_KEYS: `clinician:${CLINICIAN_KEY}`,
        CLINVQA_DATA_DIR: path.join(root, 'var'),
        CLINVQA_MODELS_DIR: path.join(root, 'models'),
        // Room for every client in each bounded stage: this test is about shutdown, not capacity.
        CLINVQA_MAX_QUEUE: '400',
        CLINVQA_DECODE_QUEUE: '400',
        CLINVQA_RATE_LIMIT_CLINICIAN: '0',
        FAKE_DELAY_MS: '40',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        const m = /"msg":"listening".*?"port":(\d+)/.exec(stdout);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', () => reject(new Error(`server exited early: ${stderr}`)));
    });

    const body = JSON.stringify({ image: (await smallPng()).toString('base64'), question: 'Normal?' });
    const outcomes: Outcome[] = [];
    let signalledAt: number | undefined;
    const deadline = Date.now() + 30_000;
    const clients = Array.from({ length: 200 }, () => keepAliveClient(port, body, agent, () => signalledAt, outcomes, deadline));
    // Every client has had answers on its keep-alive socket before the signal.
    while (outcomes.filter((o) => o.status === 200).length < 400) await new Promise((r) => setTimeout(r, 20));
    signalledAt = Date.now();
    child.kill('SIGTERM');
    await Promise.all(clients);
    const code = await exited;

    const failed = outcomes.filter((o) => o.error !== undefined && o.error !== 'ECONNREFUSED');
    const counts: Record<string, number> = {};
    for (const o of outcomes) {
      const key = `${o.sentBeforeSignal ? 'before' : 'after'} ${o.status ?? o.error}`;
      counts[key] = (counts[key] ?? 0) + 1;
    }
    const summary = JSON.stringify(counts);
    console.log(`shutdown under load: ${summary}`);
    assert.deepEqual(
      failed.map((o) => `${o.error} (body sent: ${o.bodySent})`),
      [],
      `requests reset or cut: ${summary}`,
    );
    for (const o of outcomes.filter((o) => o.status !== undefined && o.status !== 200)) {
      assert.equal(o.status, 503, summary);
      assert.ok(Number(o.retryAfter) >= 1, `a 503 without Retry-After: ${summary}`);
    }
    assert.ok(outcomes.filter((o) => o.sentBeforeSignal && o.status === 200).length >= 400, summary);
    assert.equal(code, 0, stderr);
  } finally {
    agent.destroy();
    rmSync(root, { recursive: true, force: true });
  }
});

test('past the grace period, a request still unanswered gets 503 + Retry-After, not a reset', { timeout: 60_000 }, async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-serve-grace-'));
  try {
    writeFakePackage(path.join(root, 'models'), 'clinvqa-sft');
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/fake-server-main.ts'], {
      cwd: repo,
      env: {
        ...process.env,
        PORT: '0',
        HOST: '127.0.0.1',
        CLINVQA_API_KEYS: `clinician:${CLINICIAN_KEY}`,
        CLINVQA_DATA_DIR: path.join(root, 'var'),
        CLINVQA_MODELS_DIR: path.join(root, 'models'),
        CLINVQA_SHUTDOWN_GRACE_MS: '300',
        FAKE_DELAY_MS: '5000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        stdout += c.toString();
        const m = /"msg":"listening".*?"port":(\d+)/.exec(stdout);
        if (m) resolve(Number(m[1]));
      });
      child.on('exit', () => reject(new Error(`server exited early: ${stderr}`)));
    });
    const body = JSON.stringify({ image: (await smallPng()).toString('base64'), question: 'Normal?' });
    const slow = new Promise<{ status: number; retryAfter?: string; body: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/vqa',
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${CLINICIAN_KEY}`, 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body: text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    // The request is in the model (5 s) when the signal comes.
    await new Promise((r) => setTimeout(r, 500));
    child.kill('SIGTERM');
    const res = await slow;
    assert.equal(res.status, 503, res.body);
    assert.equal(res.retryAfter, '1');
    assert.equal(JSON.parse(res.body).code, 'not_ready');
    assert.equal(await exited, 0, stderr);
    assert.match(stdout + stderr, /grace period over/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
