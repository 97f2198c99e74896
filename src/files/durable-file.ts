// Durable writes in one place. A file or a directory is written under a temporary name in the same
// directory, fsynced, renamed over its final name, and the directory fsynced, so that after a crash
// or a power loss a reader finds either the old content or the whole new content, never a partial
// file or a renamed entry whose data never reached the disk. Temporary names carry the writer's pid
// so that a sweep at start-up can tell a crashed writer's leftovers from a write still in progress.
import { createHash, randomBytes } from 'node:crypto';
import fs, { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

const TEMP_MARKER = '.tmp-';
/** `.<name>.tmp-<pid>-<hex>`: a temporary directory; the leading dot hides it from listings by id. */
const TEMP_DIR_PATTERN = /^\.(.+)\.tmp-(\d+)-[0-9a-f]+$/;
/** `<name>.tmp-<pid>-<hex>`: a temporary file next to the file it will replace. */
const TEMP_FILE_PATTERN = /^(.+)\.tmp-(\d+)-[0-9a-f]+$/;

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** The sha256 of a file's bytes, streamed so that a large file is never held in memory. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** Parsed JSON from `file`, or null when there is no such file. Malformed JSON throws. */
export async function readJson<T>(file: string): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return null;
    throw error;
  }
  return JSON.parse(text) as T;
}

/** Where a temporary copy of `name` (a file or directory in `dir`) is written before its rename. */
export function tempPath(dir: string, name: string, kind: 'file' | 'directory'): string {
  const suffix = `${TEMP_MARKER}${process.pid}-${randomBytes(6).toString('hex')}`;
  return path.join(dir, kind === 'directory' ? `.${name}${suffix}` : `${name}${suffix}`);
}

/** For a directory entry named like a temporary copy: what it was to become and the writer's pid. */
export function parseTempName(entry: string): { name: string; pid: number; kind: 'file' | 'directory' } | null {
  const dirMatch = TEMP_DIR_PATTERN.exec(entry);
  if (dirMatch) return { name: dirMatch[1]!, pid: Number(dirMatch[2]), kind: 'directory' };
  const fileMatch = TEMP_FILE_PATTERN.exec(entry);
  if (fileMatch) return { name: fileMatch[1]!, pid: Number(fileMatch[2]), kind: 'file' };
  return null;
}

/** fsync a directory so that a rename inside it survives a power loss. */
export async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (error) {
    // Some platforms (Windows) cannot open or fsync a directory; the rename is atomic there anyway.
    if (errorCode(error) !== 'EISDIR' && errorCode(error) !== 'EPERM' && errorCode(error) !== 'EINVAL') throw error;
  } finally {
    await handle?.close();
  }
}

export function syncDirectorySync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch (error) {
    if (errorCode(error) !== 'EISDIR' && errorCode(error) !== 'EPERM' && errorCode(error) !== 'EINVAL') throw error;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Bytes, or a function that writes them through the open handle (to stream large content). */
export type FileContent = string | Uint8Array | ((handle: FileHandle) => Promise<void>);

async function writeAndSync(handle: FileHandle, content: FileContent): Promise<void> {
  if (typeof content === 'function') await content(handle);
  else await handle.writeFile(content);
  await handle.sync();
}

/**
 * Creates `file`, which must not exist yet, and fsyncs it. Meant for files inside a temporary
 * directory that is published whole by renameIntoPlace; on its own it is not atomic.
 */
export async function createFileSynced(file: string, content: FileContent): Promise<void> {
  const handle = await open(file, 'wx');
  try {
    await writeAndSync(handle, content);
  } finally {
    await handle.close();
  }
}

/** Writes `file` atomically and durably, replacing whatever is there. The directory must exist. */
export async function writeFileDurably(file: string, content: FileContent): Promise<void> {
  const tmp = tempPath(path.dirname(file), path.basename(file), 'file');
  try {
    await createFileSynced(tmp, content);
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  await syncDirectory(path.dirname(file));
}

export async function writeJsonDurably(file: string, value: unknown): Promise<void> {
  await writeFileDurably(file, `${JSON.stringify(value, null, 2)}\n`);
}

/** writeFileDurably for callers that must stay synchronous. */
export function writeFileDurablySync(file: string, content: string | Uint8Array): void {
  const tmp = tempPath(path.dirname(file), path.basename(file), 'file');
  try {
    const fd = fs.openSync(tmp, 'wx', 0o644);
    try {
      fs.writeFileSync(fd, content);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (error) {
    fs.rmSync(tmp, { force: true });
    throw error;
  }
  syncDirectorySync(path.dirname(file));
}

/**
 * Writes `files` (package-relative POSIX paths) into `dir`, creating subdirectories, fsyncing every
 * file and then every directory, deepest first, so that a rename of `dir` publishes all of it.
 */
export async function writeFilesSynced(dir: string, files: Iterable<readonly [string, FileContent]>): Promise<void> {
  const directories = new Set<string>([dir]);
  for (const [relative, content] of files) {
    const full = path.join(dir, ...relative.split('/'));
    const parent = path.dirname(full);
    if (!directories.has(parent)) {
      await mkdir(parent, { recursive: true });
      for (let d = parent; d.length > dir.length; d = path.dirname(d)) directories.add(d);
    }
    await createFileSynced(full, content);
  }
  for (const directory of [...directories].sort((a, b) => b.length - a.length)) await syncDirectory(directory);
}

/**
 * Renames the temporary directory `tmp` to `target` and fsyncs the parent. A non-empty `target`
 * already there is left untouched: the outcome is 'existed' and `tmp` is removed.
 */
export async function renameIntoPlace(tmp: string, target: string): Promise<'written' | 'existed'> {
  try {
    await rename(tmp, target);
  } catch (error) {
    const code = errorCode(error);
    if (code === 'ENOTEMPTY' || code === 'EEXIST') {
      await rm(tmp, { recursive: true, force: true });
      return 'existed';
    }
    throw error;
  }
  await syncDirectory(path.dirname(target));
  return 'written';
}

/** Renames `from` to `to` in the same directory and fsyncs it, so the new name survives a crash. */
export async function renameDurably(from: string, to: string): Promise<void> {
  await rename(from, to);
  await syncDirectory(path.dirname(to));
}

export interface PublishHooks {
  /** Called with the temporary directory once it is complete and synced, just before the rename. */
  beforeRename?(tmpDir: string): Promise<void> | void;
}

/**
 * Publishes a whole directory at `target` in one rename: the files are written into a temporary
 * directory next to it, synced, and renamed into place. An existing `target` is never replaced
 * ('existed'). On any failure the temporary directory is removed.
 */
export async function publishDirectory(
  target: string,
  files: Iterable<readonly [string, FileContent]>,
  hooks: PublishHooks = {},
): Promise<'written' | 'existed'> {
  const parent = path.dirname(target);
  await mkdir(parent, { recursive: true });
  const tmp = tempPath(parent, path.basename(target), 'directory');
  await mkdir(tmp);
  try {
    await writeFilesSynced(tmp, files);
    await hooks.beforeRename?.(tmp);
    return await renameIntoPlace(tmp, target);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
}
