import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, defaultIntraOpThreads, hashApiKey, loadConfig, loadToolConfig, parseApiKeys } from '../src/config.ts';

const KEYS = { CLINVQA_API_KEYS: 'clinician:abcdefghijklmnop1,admin:ABCDEFGHIJKLMNOP2' };

test('defaults: port 8080, ./var data dir, CPU provider, batching on', () => {
  const c = loadConfig(KEYS);
  assert.equal(c.port, 8080);
  assert.equal(c.dataDir, path.resolve('./var'));
  assert.equal(c.modelsDir, path.resolve('./models'));
  assert.deepEqual(c.executionProviders, ['cpu']);
  assert.equal(c.batching.enabled, true);
  assert.equal(c.stickyHeader, 'X-Client-Id');
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.batching));
});

test('API keys are kept only as hashes with a non-reversible key id', () => {
  const keys = parseApiKeys(KEYS.CLINVQA_API_KEYS);
  assert.deepEqual(
    keys.map((k) => k.role),
    ['clinician', 'admin'],
  );
  assert.deepEqual(keys[0]!.hash, hashApiKey('abcdefghijklmnop1'));
  assert.match(keys[0]!.keyId, /^key_[0-9a-f]{12}$/);
  assert.ok(!JSON.stringify(keys).includes('abcdefghijklmnop1'));
  assert.throws(() => parseApiKeys('doctor:abcdefghijklmnop1'), ConfigError);
  assert.throws(() => parseApiKeys('clinician:short'), /at least 16/);
  assert.throws(() => parseApiKeys('abcdefghijklmnop1'), ConfigError);
});

test('no keys: refused unless CLINVQA_INSECURE_DEV=1', () => {
  assert.throws(() => loadConfig({}), /No API keys configured.*CLINVQA_INSECURE_DEV=1/s);
  const dev = loadConfig({ CLINVQA_INSECURE_DEV: '1' });
  assert.equal(dev.insecureDev, true);
  assert.equal(dev.apiKeys.length, 0);
});

test('execution providers: an ordered list that always ends on CPU; unknown names refused', () => {
  assert.deepEqual(loadConfig({ ...KEYS, CLINVQA_EXECUTION_PROVIDERS: 'cuda' }).executionProviders, ['cuda', 'cpu']);
  assert.deepEqual(loadConfig({ ...KEYS, CLINVQA_EXECUTION_PROVIDERS: 'CUDA, webgpu ,cpu' }).executionProviders, ['cuda', 'webgpu', 'cpu']);
  assert.throws(() => loadConfig({ ...KEYS, CLINVQA_EXECUTION_PROVIDERS: 'tpu' }), /unknown provider "tpu"/);
});

test('numbers and switches are range-checked', () => {
  assert.equal(loadConfig({ ...KEYS, PORT: '9000' }).port, 9000);
  assert.throws(() => loadConfig({ ...KEYS, PORT: 'eighty' }), /PORT must be an integer/);
  assert.throws(() => loadConfig({ ...KEYS, CLINVQA_MAX_BATCH: '0' }), /CLINVQA_MAX_BATCH/);
  assert.equal(loadConfig({ ...KEYS, CLINVQA_BATCHING: '0' }).batching.enabled, false);
  assert.throws(() => loadConfig({ ...KEYS, CLINVQA_BATCHING: 'maybe' }), /must be 1 or 0/);
  assert.throws(() => loadConfig({ ...KEYS, CLINVQA_STICKY_HEADER: 'bad header' }), /not a valid header/);
  assert.equal(loadConfig({ ...KEYS, CLINVQA_INTRA_OP_THREADS: '2' }).intraOpThreads, 2);
  assert.throws(() => loadConfig({ ...KEYS, CLINVQA_INTRA_OP_THREADS: '0' }), /CLINVQA_INTRA_OP_THREADS/);
});

test('ORT gets all cores but one for the event loop, at least 1 and at most 4', () => {
  assert.deepEqual(
    [1, 2, 3, 8, 64].map((cores) => defaultIntraOpThreads(cores)),
    [1, 1, 2, 4, 4],
  );
  assert.equal(loadConfig(KEYS).intraOpThreads, defaultIntraOpThreads());
});

test('the server listens on loopback unless HOST says otherwise', () => {
  assert.equal(loadConfig(KEYS).host, '127.0.0.1');
  assert.equal(loadConfig({ ...KEYS, HOST: '0.0.0.0' }).host, '0.0.0.0');
});

test('image limits, decoding lanes and per-role rate limits: defaults and overrides', () => {
  const c = loadConfig(KEYS);
  assert.equal(c.limits.maxInputPixels, 25_000_000);
  assert.ok(4096 * 4096 <= c.limits.maxInputPixels && 4096 * 5625 <= c.limits.maxInputPixels, 'large radiographs and mammograms fit');
  assert.deepEqual(c.decode, { concurrency: 4, maxQueue: 64, largeConcurrency: 1, largeMaxQueue: 4, largeDecodedBytes: 16 * 1024 * 1024 });
  assert.deepEqual(c.rateLimits, { clinician: { perSecond: 20, burst: 40 }, admin: { perSecond: 20, burst: 40 } });
  const o = loadConfig({ ...KEYS, CLINVQA_RATE_LIMIT_CLINICIAN: '0', CLINVQA_RATE_LIMIT_ADMIN: '50', CLINVQA_DECODE_LARGE_QUEUE: '0' });
  assert.equal(o.rateLimits.clinician.perSecond, 0);
  assert.deepEqual(o.rateLimits.admin, { perSecond: 50, burst: 50 }, 'the burst is at least one second of the rate');
  assert.equal(o.decode.largeMaxQueue, 0);
  assert.throws(() => loadConfig({ ...KEYS, CLINVQA_RATE_BURST_ADMIN: '0' }), /CLINVQA_RATE_BURST_ADMIN/);
  assert.throws(() => loadConfig({ ...KEYS, CLINVQA_DECODE_CONCURRENCY: '0' }), /CLINVQA_DECODE_CONCURRENCY/);
});

test("the tools' settings: execution providers as for the server, the judge key only when set", () => {
  assert.deepEqual(loadToolConfig({}), { executionProviders: ['cpu'], judgeApiKey: undefined });
  assert.deepEqual(loadToolConfig({ CLINVQA_EXECUTION_PROVIDERS: 'cuda', CLINVQA_JUDGE_API_KEY: ' sk-1 ' }), {
    executionProviders: ['cuda', 'cpu'],
    judgeApiKey: 'sk-1',
  });
  assert.throws(() => loadToolConfig({ CLINVQA_EXECUTION_PROVIDERS: 'tpu' }), ConfigError);
});

// Every setting is listed, checked and defaulted in config.ts; a module that reads the environment
// itself would bypass all three. Passing the whole environment on (to a child process, or to
// loadConfig) reads no setting and is allowed.
test('only src/config.ts reads process.env (in src/ and scripts/)', () => {
  const root = path.resolve(import.meta.dirname, '..');
  const offenders: string[] = [];
  for (const dir of ['src', 'scripts']) {
    for (const file of readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })) {
      const relative = path.join(dir, file);
      if (!file.endsWith('.ts') || relative === path.join('src', 'config.ts')) continue;
      readFileSync(path.join(root, relative), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const reads = line.replace(/\.\.\.process\.env\b/g, '').match(/process\.env\b/g);
          if (reads) offenders.push(`${relative}:${i + 1}: ${line.trim()}`);
        });
    }
  }
  assert.deepEqual(offenders, []);
});
