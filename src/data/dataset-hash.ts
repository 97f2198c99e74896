// Provenance: one sha256 that names exactly which data a checkpoint was trained on. It covers the
// JSONL bytes and the bytes of every image they reference, and is built so that it does not depend
// on where the data sits on disk or on the order the files were listed in.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { sha256Hex } from '../files/durable-file.ts';

export interface HashSource {
  /** Dataset name, e.g. 'slake'; prefixes every manifest key. */
  dataset: string;
  jsonlPath: string;
  jsonlBytes: Uint8Array;
  /** Absolute image paths the JSONL references (repeats are fine). */
  imagePaths: Iterable<string>;
}

/**
 * Builds a sha256sum-style manifest ("<hex>  <dataset>/<relative path>" per file, sorted by key
 * then hash) and returns the sha256 of that manifest. Keys are relative to each JSONL's folder, so
 * the same data copied elsewhere hashes the same; the JSONL contents themselves fix case order.
 */
export async function datasetSha256(sources: readonly HashSource[]): Promise<string> {
  const manifest = await datasetManifest(sources);
  return sha256Hex(manifest.map((e) => `${e.sha256}  ${e.key}\n`).join(''));
}

export interface ManifestEntry {
  key: string;
  sha256: string;
}

export async function datasetManifest(sources: readonly HashSource[]): Promise<ManifestEntry[]> {
  const entries: ManifestEntry[] = [];
  const seenImages = new Set<string>();
  for (const src of sources) {
    const baseDir = path.dirname(path.resolve(src.jsonlPath));
    entries.push({ key: `${src.dataset}/${path.basename(src.jsonlPath)}`, sha256: sha256Hex(src.jsonlBytes) });
    for (const image of src.imagePaths) {
      // Splits of one dataset share images (VQA-RAD train and validation do); hash each file once.
      if (seenImages.has(image)) continue;
      seenImages.add(image);
      const rel = path.relative(baseDir, image).split(path.sep).join('/');
      entries.push({ key: `${src.dataset}/${rel}`, sha256: sha256Hex(await readFile(image)) });
    }
  }
  entries.sort((a, b) => compare(a.key, b.key) || compare(a.sha256, b.sha256));
  return entries;
}

// Code-unit order, not localeCompare: the manifest must sort identically on every machine.
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
