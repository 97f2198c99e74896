// One typed, frozen configuration read from the environment once at boot. Nothing else reads
// process.env, so every knob is listed here with its default.
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

export type Role = 'clinician' | 'admin';
export const ROLES: readonly Role[] = ['clinician', 'admin'];

/** An API key as kept in memory: its SHA-256 only. The key itself is dropped after parsing. */
export interface ApiKeyEntry {
  readonly role: Role;
  /** Short, non-reversible id for logs and the audit trail. */
  readonly keyId: string;
  readonly hash: Buffer;
}

export interface BatchingConfig {
  /** false = every request runs alone (used by the benchmark's baseline). */
  readonly enabled: boolean;
  readonly maxBatch: number;
  /** How long the first queued request may wait for others to join its batch. */
  readonly maxWaitMs: number;
  /** Requests waiting per model beyond which new ones get 503 + Retry-After. */
  readonly maxQueue: number;
  /** Per-request deadline from enqueue to answer. */
  readonly timeoutMs: number;
}

export interface LimitsConfig {
  readonly maxImageBytes: number;
  readonly maxInputPixels: number;
}

/** Image decoding as a bounded stage; see serving/preprocess-stage.ts. */
export interface DecodeConfig {
  readonly concurrency: number;
  readonly maxQueue: number;
  readonly largeConcurrency: number;
  readonly largeMaxQueue: number;
  /** Estimated decoded sample bytes above which an image takes the large lane. */
  readonly largeDecodedBytes: number;
}

/** Token bucket per API key: `perSecond` refill (0 = no limit), up to `burst` at once. */
export interface RateLimit {
  readonly perSecond: number;
  readonly burst: number;
}

export interface Config {
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly modelsDir: string;
  readonly apiKeys: readonly ApiKeyEntry[];
  /** Serve without keys (every caller is an admin). Only honoured when explicitly asked for. */
  readonly insecureDev: boolean;
  readonly executionProviders: readonly string[];
  /** ORT intra-op threads per session (see defaultIntraOpThreads). */
  readonly intraOpThreads: number;
  /** Header naming the client for sticky A/B routing, used until the A/B table sets its own. */
  readonly stickyHeader: string;
  readonly batching: BatchingConfig;
  readonly limits: LimitsConfig;
  readonly decode: DecodeConfig;
  readonly rateLimits: Readonly<Record<Role, RateLimit>>;
  readonly shutdownGraceMs: number;
  readonly logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Shared Postgres of a cluster deployment (postgres://…); null = embedded SQLite and files under dataDir. */
  readonly databaseUrl: string | null;
  /** Seconds a fine-tune job's worker may be silent before another worker takes the job over. */
  readonly jobLeaseS: number;
  /** Whether this server trains fine-tunes in a child process (default: yes without a database, no with one). */
  readonly embeddedWorker: boolean;
  /** Names this process in the shared audit trail and job leases. */
  readonly instanceId: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

const KNOWN_PROVIDERS = new Set(['cpu', 'cuda', 'webgpu', 'dml', 'coreml']);
const MIN_KEY_LENGTH = 16;

/** Hash used to compare keys; also what `keyIdOf` derives the printable id from. */
export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/** A 12-hex-digit id for a key, from a differently-salted hash so it reveals nothing of `hash`. */
export function keyIdOf(key: string): string {
  return `key_${createHash('sha256').update(`clinvqa-key-id:${key}`, 'utf8').digest('hex').slice(0, 12)}`;
}

export function parseApiKeys(spec: string | undefined): ApiKeyEntry[] {
  if (spec === undefined || spec.trim() === '') return [];
  return spec.split(',').map((pair, index) => {
    const separator = pair.indexOf(':');
    const role = pair.slice(0, separator).trim();
    const key = pair.slice(separator + 1).trim();
    if (separator < 0 || !ROLES.includes(role as Role)) {
      throw new ConfigError(`CLINVQA_API_KEYS entry ${index + 1}: expected "clinician:<key>" or "admin:<key>"`);
    }
    if (key.length < MIN_KEY_LENGTH) {
      throw new ConfigError(`CLINVQA_API_KEYS entry ${index + 1}: keys must be at least ${MIN_KEY_LENGTH} characters`);
    }
    return Object.freeze({ role: role as Role, keyId: keyIdOf(key), hash: hashApiKey(key) });
  });
}

function intFrom(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer in [${min}, ${max}], got "${raw}"`);
  }
  return value;
}

function boolFrom(env: NodeJS.ProcessEnv, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new ConfigError(`${name} must be 1 or 0, got "${env[name]}"`);
}

function rateLimitFrom(env: NodeJS.ProcessEnv, role: string, fallback: RateLimit): RateLimit {
  const perSecond = intFrom(env, `CLINVQA_RATE_LIMIT_${role}`, fallback.perSecond, 0, 1_000_000);
  const burst = intFrom(env, `CLINVQA_RATE_BURST_${role}`, Math.max(fallback.burst, perSecond), 1, 1_000_000);
  return Object.freeze({ perSecond, burst });
}

function providersFrom(raw: string | undefined): string[] {
  const list = (raw ?? 'cpu')
    .split(',')
    .map((p) => p.trim().toLowerCase())
    .filter((p) => p !== '');
  for (const provider of list) {
    if (!KNOWN_PROVIDERS.has(provider)) {
      throw new ConfigError(`CLINVQA_EXECUTION_PROVIDERS: unknown provider "${provider}" (known: ${[...KNOWN_PROVIDERS].join(', ')})`);
    }
  }
  // CPU is always the last resort, so a missing GPU degrades instead of failing to start.
  if (!list.includes('cpu')) list.push('cpu');
  return list;
}

/**
 * onnxruntime-node runs a session on the calling (event-loop) thread, which the server also needs
 * for HTTP, decoding and JSON. ORT's own pool spin-waits on every op, so giving it every core
 * starves the rest of the request path: on the 2-core reference machine one intra-op thread served
 * 68.6 req/s at 16 clients against 42.4 with two (batched; 35.0 vs 26.4 unbatched), and the bare
 * engine was faster with one thread too (batch 8: 6.6 vs 10.0 ms per answer). So: all cores but
 * one, at most 4 (the model is too small to split further with profit).
 */
export function defaultIntraOpThreads(cores = os.availableParallelism()): number {
  return Math.max(1, Math.min(4, cores - 1));
}

/** Reads and checks the environment; throws ConfigError with a message fit for the console. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const apiKeys = parseApiKeys(env.CLINVQA_API_KEYS);
  const insecureDev = boolFrom(env, 'CLINVQA_INSECURE_DEV', false);
  if (apiKeys.length === 0 && !insecureDev) {
    throw new ConfigError(
      'No API keys configured: set CLINVQA_API_KEYS="clinician:<key>,admin:<key>" ' +
        '(or CLINVQA_INSECURE_DEV=1 to serve without authentication on a development machine).',
    );
  }
  const logLevel = (env.CLINVQA_LOG_LEVEL ?? 'info').toLowerCase();
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new ConfigError(`CLINVQA_LOG_LEVEL must be debug, info, warn or error, got "${logLevel}"`);
  }
  const stickyHeader = (env.CLINVQA_STICKY_HEADER ?? 'X-Client-Id').trim();
  if (!/^[A-Za-z0-9-]{1,64}$/.test(stickyHeader)) {
    throw new ConfigError(`CLINVQA_STICKY_HEADER is not a valid header name: "${stickyHeader}"`);
  }
  const databaseUrl = (env.CLINVQA_DATABASE_URL ?? '').trim() || null;
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('CLINVQA_DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  return Object.freeze({
    // Loopback unless asked: a development server is not reachable from the network by accident.
    host: env.HOST ?? '127.0.0.1',
    port: intFrom(env, 'PORT', 8080, 0, 65535),
    dataDir: path.resolve(env.CLINVQA_DATA_DIR ?? './var'),
    modelsDir: path.resolve(env.CLINVQA_MODELS_DIR ?? './models'),
    apiKeys: Object.freeze(apiKeys),
    insecureDev,
    executionProviders: Object.freeze(providersFrom(env.CLINVQA_EXECUTION_PROVIDERS)),
    intraOpThreads: intFrom(env, 'CLINVQA_INTRA_OP_THREADS', defaultIntraOpThreads(), 1, 256),
    stickyHeader,
    batching: Object.freeze({
      enabled: boolFrom(env, 'CLINVQA_BATCHING', true),
      maxBatch: intFrom(env, 'CLINVQA_MAX_BATCH', 16, 1, 256),
      maxWaitMs: intFrom(env, 'CLINVQA_BATCH_MAX_WAIT_MS', 10, 0, 1000),
      maxQueue: intFrom(env, 'CLINVQA_MAX_QUEUE', 64, 1, 100_000),
      timeoutMs: intFrom(env, 'CLINVQA_REQUEST_TIMEOUT_MS', 60_000, 100, 3_600_000),
    }),
    limits: Object.freeze({
      maxImageBytes: intFrom(env, 'CLINVQA_MAX_IMAGE_BYTES', 20 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
      // The models downscale every image (to 96 px today; Qwen2-VL to at most ~12.8 M pixels), so
      // pixels beyond the largest clinical images only cost decoding: 25 M keeps 4k x 4k
      // radiographs (16.8 M) and full-field mammograms (4096 x 5625 = 23 M).
      maxInputPixels: intFrom(env, 'CLINVQA_MAX_IMAGE_PIXELS', 25_000_000, 1024, 1_000_000_000),
    }),
    decode: Object.freeze({
      // As many as libuv has pool threads (sharp decodes there): more would only wait in libuv's
      // own queue, fewer turns event-loop latency into a throughput cap. The large lane holds at
      // most largeConcurrency of those threads, so ordinary images always find the rest.
      concurrency: intFrom(env, 'CLINVQA_DECODE_CONCURRENCY', 4, 1, 64),
      maxQueue: intFrom(env, 'CLINVQA_DECODE_QUEUE', 64, 0, 100_000),
      largeConcurrency: intFrom(env, 'CLINVQA_DECODE_LARGE_CONCURRENCY', 1, 1, 64),
      largeMaxQueue: intFrom(env, 'CLINVQA_DECODE_LARGE_QUEUE', 4, 0, 100_000),
      largeDecodedBytes: intFrom(env, 'CLINVQA_DECODE_LARGE_BYTES', 16 * 1024 * 1024, 1024, 2 ** 40),
    }),
    rateLimits: Object.freeze({
      clinician: rateLimitFrom(env, 'CLINICIAN', { perSecond: 20, burst: 40 }),
      admin: rateLimitFrom(env, 'ADMIN', { perSecond: 20, burst: 40 }),
    }),
    shutdownGraceMs: intFrom(env, 'CLINVQA_SHUTDOWN_GRACE_MS', 25_000, 0, 600_000),
    logLevel: logLevel as Config['logLevel'],
    databaseUrl,
    jobLeaseS: intFrom(env, 'CLINVQA_JOB_LEASE_S', 60, 2, 86_400),
    embeddedWorker: boolFrom(env, 'CLINVQA_EMBEDDED_WORKER', databaseUrl === null),
    instanceId: (env.CLINVQA_INSTANCE_ID ?? '').trim() || `${os.hostname()}:${process.pid}`,
  });
}

/** Settings of the offline tools (trainers, evaluation scripts), which run without the server's API keys. */
export interface ToolConfig {
  /** CLINVQA_EXECUTION_PROVIDERS, as for the server. */
  executionProviders: readonly string[];
  /** CLINVQA_JUDGE_API_KEY: bearer token for an external semantic judge (a GRPO reward); a secret, so never in a trainer config file. */
  judgeApiKey: string | undefined;
}

export function loadToolConfig(env: NodeJS.ProcessEnv = process.env): ToolConfig {
  const judgeApiKey = env.CLINVQA_JUDGE_API_KEY?.trim();
  return Object.freeze({
    executionProviders: Object.freeze(providersFrom(env.CLINVQA_EXECUTION_PROVIDERS)),
    judgeApiKey: judgeApiKey ? judgeApiKey : undefined,
  });
}
