// Where uploads live on disk, in two stages, each written to a temporary name and renamed into place
// so that a crash leaves either nothing or a whole directory:
//   <dataDir>/uploads/<job id>/      the upload as received (training.jsonl + files/…), kept until
//                                    validation has finished, so a server killed mid-validation
//                                    validates it again on restart;
//   <dataDir>/datasets/<sha256>/     the validated dataset by content hash (train.jsonl + the images
//                                    it names at the paths it names); immutable, shared by jobs
//                                    that upload the same data.
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { datasetSha256 } from '../data/dataset-hash.ts';
import { publishDirectory, renameIntoPlace, tempPath, writeFilesSynced } from '../files/durable-file.ts';

export const UPLOADS_DIR = 'uploads';
export const DATASETS_DIR = 'datasets';
/** The JSONL inside a stored dataset; cases resolve their images against its folder. */
export const DATASET_JSONL = 'train.jsonl';
/** Name given to uploaded cases' `dataset` (metrics are grouped under it). */
export const UPLOAD_DATASET_NAME = 'upload';

export interface StagedUpload {
  jsonl: Buffer;
  /** Uploaded files by their relative path (image parts by file name, archive entries by path). */
  files: Map<string, Buffer>;
}

/** The GRPO run folder of a job: checkpoints (resume points), log.jsonl, the cached base-model scores. */
export function runDirOf(dataDir: string, jobId: string): string {
  return path.join(dataDir, 'runs', jobId);
}

// ---- stage 1: the upload as received -------------------------------------------------------------

export function stagedUploadDir(dataDir: string, jobId: string): string {
  return path.join(dataDir, UPLOADS_DIR, jobId);
}

export async function stageUpload(dataDir: string, jobId: string, upload: StagedUpload): Promise<void> {
  const files: [string, Uint8Array][] = [['training.jsonl', upload.jsonl]];
  for (const [rel, bytes] of upload.files) files.push([`files/${rel}`, bytes]);
  const outcome = await publishDirectory(stagedUploadDir(dataDir, jobId), files);
  if (outcome === 'existed') throw new Error(`an upload for ${jobId} is already staged`);
}

export async function readStagedUpload(dataDir: string, jobId: string): Promise<StagedUpload> {
  const dir = stagedUploadDir(dataDir, jobId);
  const jsonl = await readFile(path.join(dir, 'training.jsonl'));
  const files = new Map<string, Buffer>();
  const root = path.join(dir, 'files');
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(rel === '' ? root : path.join(root, rel), { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      const child = rel === '' ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory()) await walk(child);
      else if (e.isFile()) files.set(child, await readFile(path.join(root, child)));
    }
  };
  await walk('');
  return { jsonl, files };
}

export async function removeStagedUpload(dataDir: string, jobId: string): Promise<void> {
  await rm(stagedUploadDir(dataDir, jobId), { recursive: true, force: true });
}

/** Job ids with a staged upload, and temp leftovers of crashed writes (removed here). */
export async function listStagedUploads(dataDir: string): Promise<string[]> {
  const root = path.join(dataDir, UPLOADS_DIR);
  const names = await readdir(root).catch(() => [] as string[]);
  const ids: string[] = [];
  for (const name of names) {
    if (name.startsWith('.')) await rm(path.join(root, name), { recursive: true, force: true });
    else ids.push(name);
  }
  return ids;
}

// ---- stage 2: the validated dataset by content hash ------------------------------------------------

export function datasetDir(dataDir: string, sha256: string): string {
  return path.join(dataDir, DATASETS_DIR, sha256);
}

/**
 * Stores a validated dataset under its hash (dataset-hash.ts: the JSONL bytes and every image it
 * names, keyed by path — the same hash training provenance uses). The files are written to a temp
 * folder, hashed there, and the folder renamed to the hash; an identical dataset already stored is
 * reused.
 */
export async function storeDataset(dataDir: string, jsonl: Buffer, images: ReadonlyMap<string, Buffer>): Promise<{ sha256: string; dir: string }> {
  const root = path.join(dataDir, DATASETS_DIR);
  await mkdir(root, { recursive: true });
  const tmp = tempPath(root, 'incoming', 'directory');
  await mkdir(tmp);
  try {
    const entries = [...images];
    await writeFilesSynced(tmp, [[DATASET_JSONL, jsonl], ...entries]);
    const sha256 = await rehashStoredDataset(
      tmp,
      entries.map(([rel]) => path.join(tmp, ...rel.split('/'))),
    );
    const dir = datasetDir(dataDir, sha256);
    await renameIntoPlace(tmp, dir); // 'existed': the same content is already stored, and tmp is gone
    return { sha256, dir };
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
}

/** Temp leftovers of dataset writes cut short by a crash. */
export async function sweepDatasetTemps(dataDir: string): Promise<void> {
  const root = path.join(dataDir, DATASETS_DIR);
  for (const name of await readdir(root).catch(() => [] as string[])) {
    if (name.startsWith('.')) await rm(path.join(root, name), { recursive: true, force: true });
  }
}

/** Recomputes a stored dataset's hash from disk (the same function training provenance uses). */
export async function rehashStoredDataset(dir: string, imagePaths: Iterable<string>): Promise<string> {
  const jsonlPath = path.join(dir, DATASET_JSONL);
  return datasetSha256([{ dataset: UPLOAD_DATASET_NAME, jsonlPath, jsonlBytes: await readFile(jsonlPath), imagePaths }]);
}
