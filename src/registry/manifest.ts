// The manifest of a model package (models/<id>/manifest.json): where the model came from, how it was
// trained and evaluated, and the sha256 of every other file in the package. This module only defines
// and validates the document; src/registry/model-package.ts reads and writes packages on disk.

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** Package ids become URL path segments and directory names, so they are kept to a safe alphabet. */
export const PACKAGE_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const MODEL_FAMILY = 'clinvqa-vlm';
export const MANIFEST_FILE = 'manifest.json';
export const CONFIG_FILE = 'config.json';

/** Files every package must contain (besides the manifest); servers load all of them. */
export const REQUIRED_PACKAGE_FILES = [CONFIG_FILE, 'tokenizer.json', 'model.safetensors', 'onnx/vision_encoder.onnx', 'onnx/decoder.onnx'] as const;

export const TRAINING_METHODS = ['base', 'sft', 'grpo'] as const;
export type TrainingMethod = (typeof TRAINING_METHODS)[number];

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** Metric name → value, optionally grouped (e.g. per split or per benchmark). */
export type EvalMetrics = { [name: string]: number | EvalMetrics };

export interface Manifest {
  id: string;
  family: typeof MODEL_FAMILY;
  /** Model size/architecture preset name, as understood by the model config code. */
  preset: string;
  /** Version label of this model, free-form but non-empty (e.g. "1.2.0"). */
  version: string;
  /** Id of the package this one was fine-tuned from; null for a base model. */
  parent: string | null;
  /** ISO 8601 UTC timestamp, e.g. "2025-01-31T12:00:00.000Z". */
  created_at: string;
  method: TrainingMethod;
  /** Training configuration used to produce the weights (hyperparameters etc.). */
  training: JsonObject;
  seed: number;
  dataset: { name: string; sha256: string };
  eval: EvalMetrics;
  /** Package-relative POSIX path → lowercase hex sha256 of the file's bytes. */
  files: Record<string, string>;
}

export class ManifestError extends Error {
  override name = 'ManifestError';
}

const SHA256_PATTERN = /^[0-9a-f]{64}$/;
// Same shape as Date.prototype.toISOString() output, which is what writers produce.
const ISO_UTC_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

export function isValidPackageId(id: unknown): id is string {
  return typeof id === 'string' && PACKAGE_ID_PATTERN.test(id);
}

/**
 * Whether `path` is a safe package-relative file path: POSIX separators, no leading slash, no empty,
 * "." or ".." segments. Anything else could make a manifest point outside its package.
 */
export function isSafeRelativePath(path: string): boolean {
  if (path.length === 0 || path.includes('\\') || path.includes('\0')) return false;
  return path.split('/').every((segment) => segment !== '' && segment !== '.' && segment !== '..');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function checkJson(value: unknown, where: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new ManifestError(`${where} must be a finite number`);
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => checkJson(item, `${where}[${i}]`));
    return;
  }
  if (isPlainObject(value)) {
    for (const [key, item] of Object.entries(value)) checkJson(item, `${where}.${key}`);
    return;
  }
  throw new ManifestError(`${where} is not JSON data`);
}

function checkMetrics(value: unknown, where: string): void {
  if (!isPlainObject(value)) throw new ManifestError(`${where} must be an object of numbers`);
  for (const [key, item] of Object.entries(value)) {
    if (typeof item === 'number') {
      if (!Number.isFinite(item)) throw new ManifestError(`${where}.${key} must be a finite number`);
    } else {
      checkMetrics(item, `${where}.${key}`);
    }
  }
}

const KNOWN_FIELDS = new Set(['id', 'family', 'preset', 'version', 'parent', 'created_at', 'method', 'training', 'seed', 'dataset', 'eval', 'files']);

/** Checks everything except `files`; shared by parseManifest and by the package writer before it writes. */
export function validateManifestFields(m: Record<string, unknown>): void {
  const fail = (message: string): never => {
    throw new ManifestError(message);
  };
  for (const key of Object.keys(m)) {
    if (!KNOWN_FIELDS.has(key)) fail(`unknown field "${key}"`);
  }
  if (!isValidPackageId(m.id)) fail(`id must match ${PACKAGE_ID_PATTERN}, got ${JSON.stringify(m.id)}`);
  if (m.family !== MODEL_FAMILY) fail(`family must be "${MODEL_FAMILY}", got ${JSON.stringify(m.family)}`);
  if (typeof m.preset !== 'string' || m.preset === '') fail('preset must be a non-empty string');
  if (typeof m.version !== 'string' || m.version === '') fail('version must be a non-empty string');
  if (m.parent !== null && !isValidPackageId(m.parent)) {
    fail(`parent must be a package id or null, got ${JSON.stringify(m.parent)}`);
  }
  if (m.parent === m.id) fail('parent must differ from id');
  if (typeof m.created_at !== 'string' || !ISO_UTC_PATTERN.test(m.created_at) || Number.isNaN(Date.parse(m.created_at))) {
    fail(`created_at must be an ISO 8601 UTC timestamp, got ${JSON.stringify(m.created_at)}`);
  }
  if (!(TRAINING_METHODS as readonly unknown[]).includes(m.method)) {
    fail(`method must be one of ${TRAINING_METHODS.join(', ')}, got ${JSON.stringify(m.method)}`);
  }
  // sft/grpo runs may start from random init in tests and demos, so only the base case is enforced.
  if (m.method === 'base' && m.parent !== null) fail('a base model cannot have a parent');
  if (!isPlainObject(m.training)) fail('training must be an object');
  checkJson(m.training, 'training');
  if (!Number.isSafeInteger(m.seed)) fail(`seed must be an integer, got ${JSON.stringify(m.seed)}`);
  if (!isPlainObject(m.dataset)) fail('dataset must be an object {name, sha256}');
  const dataset = m.dataset as Record<string, unknown>;
  if (typeof dataset.name !== 'string' || dataset.name === '') fail('dataset.name must be a non-empty string');
  if (typeof dataset.sha256 !== 'string' || !SHA256_PATTERN.test(dataset.sha256)) {
    fail('dataset.sha256 must be 64 lowercase hex characters');
  }
  if (Object.keys(dataset).some((key) => key !== 'name' && key !== 'sha256')) fail('dataset has fields other than name, sha256');
  checkMetrics(m.eval, 'eval');
}

/** Validates a parsed manifest.json document and returns it typed. Throws ManifestError naming the field. */
export function parseManifest(value: unknown): Manifest {
  if (!isPlainObject(value)) throw new ManifestError('manifest must be a JSON object');
  validateManifestFields(value);
  const files = value.files;
  if (!isPlainObject(files)) throw new ManifestError('files must be an object {relativePath: sha256}');
  for (const [path, hash] of Object.entries(files)) {
    if (!isSafeRelativePath(path)) {
      throw new ManifestError(`files: "${path}" is not a valid package file path (it must be relative, "/"-separated, with no empty, "." or ".." segments)`);
    }
    if (path === MANIFEST_FILE) throw new ManifestError(`files: the manifest cannot list "${MANIFEST_FILE}" itself`);
    if (typeof hash !== 'string' || !SHA256_PATTERN.test(hash)) {
      throw new ManifestError(`files: sha256 of "${path}" must be 64 lowercase hex characters`);
    }
  }
  for (const required of REQUIRED_PACKAGE_FILES) {
    if (!Object.hasOwn(files, required)) throw new ManifestError(`files does not list required file "${required}"`);
  }
  return value as unknown as Manifest;
}

/** Reads and validates `<dir>/manifest.json`. Errors name the manifest path. */
export async function readManifest(dir: string): Promise<Manifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ManifestError(`${path}: cannot read manifest (${code ?? (error as Error).message})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ManifestError(`${path}: not valid JSON: ${(error as Error).message}`);
  }
  try {
    return parseManifest(json);
  } catch (error) {
    if (error instanceof ManifestError) throw new ManifestError(`${path}: ${error.message}`);
    throw error;
  }
}
