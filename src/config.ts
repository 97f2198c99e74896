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
  return 'key_' + createHash('sha256').update('clinvqa-key-id:' + key, 'utf8').digest('hex').slice(0, 12);
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

function providersFrom(raw: string | undefined): string[] {
  const list = (raw ?? 'cpu').split(',').map((p) => p.trim().toLowerCase()).filter((p) => p !== '');
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
    host: env.HOST ?? '0.0.0.0',
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
      maxInputPixels: intFrom(env, 'CLINVQA_MAX_IMAGE_PIXELS', 50_000_000, 1024, 1_000_000_000),
    }),
    shutdownGraceMs: intFrom(env, 'CLINVQA_SHUTDOWN_GRACE_MS', 25_000, 0, 600_000),
    logLevel: logLevel as Config['logLevel'],
    databaseUrl,
    jobLeaseS: intFrom(env, 'CLINVQA_JOB_LEASE_S', 60, 2, 86_400),
    embeddedWorker: boolFrom(env, 'CLINVQA_EMBEDDED_WORKER', databaseUrl === null),
    instanceId: (env.CLINVQA_INSTANCE_ID ?? '').trim() || `${os.hostname()}:${process.pid}`,
  });
}
