// Model packages on disk: a directory models/<id>/ holding manifest.json, config.json, tokenizer.json,
// model.safetensors and onnx/{vision_encoder,decoder}.onnx (plus any extra files), each listed in the
// manifest with its sha256. Packages are written once and never modified: a new model gets a new id.

import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import type { Stats } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

import {
  CONFIG_FILE,
  MANIFEST_FILE,
  MODEL_FAMILY,
  REQUIRED_PACKAGE_FILES,
  isSafeRelativePath,
  isValidPackageId,
  parseManifest,
  readManifest,
  validateManifestFields,
  type JsonObject,
  type Manifest,
} from './manifest.ts';

/** A package file is missing, unreadable or altered, or the package cannot be written. */
export class ModelPackageError extends Error {
  override name = 'ModelPackageError';
  constructor(
    message: string,
    /** Package-relative path of the offending file, when there is one. */
    readonly file?: string,
  ) {
    super(message);
  }
}

/** Manifest fields the caller supplies; `files` is computed, `family` and `created_at` have defaults. */
export type ModelPackageFields = Omit<Manifest, 'files' | 'family' | 'created_at'> & {
  family?: Manifest['family'];
  created_at?: string;
};

export interface ModelPackageInput extends ModelPackageFields {
  /** Model configuration, written as config.json. */
  config: JsonObject;
  /** Every other file, by package-relative POSIX path (tokenizer.json, model.safetensors, onnx/...). */
  files: Record<string, Uint8Array>;
}

export interface WritePackageHooks {
  /**
   * Called with the temporary directory once every file is written and synced, just before the
   * rename that publishes the package. Lets tests observe (or crash at) the last unpublished moment.
   */
  beforeRename?(tmpDir: string): Promise<void> | void;
}

export interface ModelPackageEntry {
  id: string;
  dir: string;
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

// fsync before the rename so that after a power loss the renamed package holds its data, not holes.
async function writeFileDurably(path: string, bytes: Uint8Array): Promise<void> {
  const handle = await open(path, 'wx');
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncDirectory(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

const TMP_MARKER = '.tmp-';
const TMP_DIR_PATTERN = /^\.(.+)\.tmp-(\d+)-[0-9a-f]+$/;
/** Hash prefix shown in errors: enough to tell two hashes apart at a glance, short enough to read. */
const HASH_PREFIX = 12;

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Whether anything (a file, a directory, a dangling link) is at `target`; other errors throw. */
/**
 * What a command-line `--model` names: a package directory when it holds a manifest, else a model
 * id under `modelsDir` (e.g. `clinvqa-grpo` → `models/clinvqa-grpo`).
 */
export function packageDirFor(modelOrDir: string, modelsDir = 'models'): string {
  return existsSync(join(modelOrDir, 'manifest.json')) ? modelOrDir : join(modelsDir, modelOrDir);
}

export async function isPathTaken(target: string): Promise<boolean> {
  return lstat(target).then(
    () => true,
    (error: unknown) => {
      if (errorCode(error) === 'ENOENT') return false;
      throw error;
    },
  );
}

/**
 * Writes a complete package at `dir`, whose last path segment must be the package id. Everything is
 * written into a hidden temporary directory next to `dir` (manifest last), then renamed into place in
 * one step, so `dir` either does not exist or holds a whole package. Refuses to replace an existing
 * package. Returns the manifest as written.
 */
export async function writeModelPackage(dir: string, input: ModelPackageInput, hooks: WritePackageHooks = {}): Promise<Manifest> {
  const { config, files, ...given } = input;
  const fields = {
    id: given.id,
    family: given.family ?? MODEL_FAMILY,
    preset: given.preset,
    version: given.version,
    parent: given.parent,
    created_at: given.created_at ?? new Date().toISOString(),
    method: given.method,
    training: given.training,
    seed: given.seed,
    dataset: given.dataset,
    eval: given.eval,
  };
  // Validate before touching the disk, so a bad call leaves nothing behind.
  validateManifestFields(fields);
  const target = resolve(dir);
  if (basename(target) !== fields.id) {
    throw new ModelPackageError(`package directory ${target} must be named after the package id "${fields.id}"`);
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ModelPackageError('config must be a JSON object');
  }
  for (const path of Object.keys(files)) {
    if (!isSafeRelativePath(path)) throw new ModelPackageError(`"${path}" is not a valid package file path`, path);
    if (path === MANIFEST_FILE || path === CONFIG_FILE) {
      throw new ModelPackageError(`"${path}" is generated by writeModelPackage and cannot be passed in files`, path);
    }
    if (!(files[path] instanceof Uint8Array)) throw new ModelPackageError(`file "${path}" must be a Buffer or Uint8Array`, path);
  }
  for (const required of REQUIRED_PACKAGE_FILES) {
    if (required !== CONFIG_FILE && !Object.hasOwn(files, required)) {
      throw new ModelPackageError(`package is missing required file "${required}"`, required);
    }
  }
  const contents: [string, Uint8Array][] = [
    [CONFIG_FILE, Buffer.from(`${JSON.stringify(config, null, 2)}\n`, 'utf8')],
    ...Object.entries(files),
  ];

  if (await isPathTaken(target)) throw new ModelPackageError(`package ${fields.id} already exists at ${target}; packages are immutable`);

  const parent = dirname(target);
  await mkdir(parent, { recursive: true });
  // The leading dot keeps the temporary directory from ever matching the package id pattern; the pid
  // lets sweepIncompletePackages tell a crashed writer's leftovers from a write still in progress.
  const tmp = join(parent, `.${fields.id}${TMP_MARKER}${process.pid}-${randomBytes(6).toString('hex')}`);
  await mkdir(tmp);
  try {
    const hashes: Record<string, string> = {};
    const directories = new Set<string>([tmp]);
    for (const [path, bytes] of contents) {
      const full = join(tmp, path);
      const parentDir = dirname(full);
      if (!directories.has(parentDir)) {
        await mkdir(parentDir, { recursive: true });
        directories.add(parentDir);
      }
      await writeFileDurably(full, bytes);
      hashes[path] = sha256Hex(bytes);
    }
    const sortedHashes = Object.fromEntries(Object.keys(hashes).sort().map((path) => [path, hashes[path]!]));
    const manifest = parseManifest({ ...fields, files: sortedHashes });
    await writeFileDurably(join(tmp, MANIFEST_FILE), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8'));
    for (const directory of [...directories].sort((a, b) => b.length - a.length)) await syncDirectory(directory);
    await hooks.beforeRename?.(tmp);
    try {
      await rename(tmp, target);
    } catch (error) {
      const code = errorCode(error);
      if (code === 'ENOTEMPTY' || code === 'EEXIST') {
        throw new ModelPackageError(`package ${fields.id} already exists at ${target}; packages are immutable`);
      }
      throw error;
    }
    await syncDirectory(parent);
    return manifest;
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Checks a package against its manifest: the manifest is well-formed, the directory is named after the
 * id, every listed file exists as a regular file with the listed sha256, and no file is unlisted.
 * Throws ManifestError for a bad manifest and ModelPackageError naming the file otherwise. Returns the
 * manifest.
 *
 * Unlisted files are refused, not ignored: the manifest is the record of what the package is, and a
 * file nobody hashed could still be read at load time (ONNX Runtime, for one, opens external-data
 * files named inside a graph). A package is written whole by writeModelPackage, so an extra file means
 * someone changed it afterwards.
 */
export async function verifyModelPackage(dir: string): Promise<Manifest> {
  const manifest = await readManifest(dir);
  const target = resolve(dir);
  if (basename(target) !== manifest.id) {
    throw new ModelPackageError(`${target}: directory name "${basename(target)}" does not match manifest id "${manifest.id}"`);
  }
  for (const [path, expected] of Object.entries(manifest.files)) {
    const full = join(target, path);
    let actual: string;
    try {
      // lstat: a symlink could point outside the package, or be repointed after verification.
      const info = await lstat(full);
      if (!info.isFile()) {
        throw new ModelPackageError(`${target}: "${path}" must be a regular file, found ${describeKind(info)}`, path);
      }
      actual = await sha256File(full);
    } catch (error) {
      if (error instanceof ModelPackageError) throw error;
      const code = errorCode(error);
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        throw new ModelPackageError(`${target}: file "${path}" is listed in the manifest but missing`, path);
      }
      throw new ModelPackageError(`${target}: cannot read "${path}": ${(error as Error).message}`, path);
    }
    if (actual !== expected) {
      throw new ModelPackageError(
        `${target}: file "${path}" does not match the manifest: sha256 ${actual.slice(0, HASH_PREFIX)}…, ` +
          `expected ${expected.slice(0, HASH_PREFIX)}…`,
        path,
      );
    }
  }
  for (const path of await packageFiles(target)) {
    if (path !== MANIFEST_FILE && !Object.hasOwn(manifest.files, path)) {
      throw new ModelPackageError(`${target}: file "${path}" is not listed in the manifest`, path);
    }
  }
  return manifest;
}

function describeKind(info: Stats): string {
  if (info.isSymbolicLink()) return 'a symbolic link';
  if (info.isDirectory()) return 'a directory';
  return 'a special file';
}

/** Every non-directory entry under `root`, as package-relative POSIX paths. */
async function packageFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (relative: string): Promise<void> => {
    const entries = await readdir(relative === '' ? root : join(root, relative), { withFileTypes: true });
    for (const entry of entries) {
      const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
      if (entry.isDirectory()) await walk(path);
      else found.push(path);
    }
  };
  await walk('');
  return found.sort();
}

/** Names in `dir`; a directory that does not exist yet simply has none. */
async function entriesOrNone(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return [];
    throw error;
  }
}

/**
 * Package directories directly under `modelsDir`: those named like a package id that contain a
 * manifest.json, sorted by id. Contents are not validated here; use verifyModelPackage for that.
 * A missing `modelsDir` means no packages yet.
 */
export async function listModelPackages(modelsDir: string): Promise<ModelPackageEntry[]> {
  const names = await entriesOrNone(modelsDir);
  const entries: ModelPackageEntry[] = [];
  for (const name of names.sort()) {
    if (!isValidPackageId(name)) continue; // also skips ".<id>.tmp-*" directories of writes in progress
    const dir = join(modelsDir, name);
    try {
      if ((await stat(join(dir, MANIFEST_FILE))).isFile()) entries.push({ id: name, dir });
    } catch (error) {
      // ENOTDIR: a plain file that happens to be named like a package.
      if (errorCode(error) !== 'ENOENT' && errorCode(error) !== 'ENOTDIR') throw error;
    }
  }
  return entries;
}

/**
 * Removes the temporary directories of package writes that can no longer finish: those whose writing
 * process has exited (it crashed or was killed before its rename). Writes in progress, in this or
 * another live process, are left alone. Returns the names removed. Meant for start-up.
 */
export async function sweepIncompletePackages(modelsDir: string): Promise<string[]> {
  const names = await entriesOrNone(modelsDir);
  const removed: string[] = [];
  for (const name of names.sort()) {
    const match = TMP_DIR_PATTERN.exec(name);
    if (!match || processIsAlive(Number(match[2]))) continue;
    await rm(join(modelsDir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to someone else, so it may still be writing.
    return errorCode(error) === 'EPERM';
  }
}
