// Serving graphs of an imported folder, made once and cached under the data directory:
//   <dataDir>/graph-cache/<weights sha256>/<config + graph format key>/onnx/{…}.onnx + weights.bin
// The folder itself is never written to (it may be read-only, or shared). The key holds the weights'
// sha256 (what was loaded) and a hash of the parsed config and the graph format (how it was built),
// so changed weights, a changed config or a newer graph format each get their own entry; an entry is
// published by one rename, so a crash mid-export leaves only a temporary directory behind.
import { createHash } from 'node:crypto';
import { mkdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Qwen2VLConfig } from '../../engine/architectures/qwen2-vl/config.ts';
import { exportQwen2VLServing } from '../../engine/architectures/qwen2-vl/export.ts';
import { SERVING_FILES } from '../../engine/architectures/qwen2-vl/graphs.ts';
import { renameIntoPlace, syncDirectory, tempPath } from '../../files/durable-file.ts';
import { HfFolderError } from '../../hf/errors.ts';
import { loadWeights, type LoadWeightsOptions } from '../../hf/weights.ts';

/** Bump when the serving graphs change in a way old cache entries must not be reused for. */
export const GRAPH_FORMAT = 'qwen2-vl serving v1: logits last, present new';
export const GRAPH_CACHE_DIR = 'graph-cache';

export interface ServingGraphPaths {
  vision: string;
  embed: string;
  decoder: string;
  /** The cache entry's directory. */
  dir: string;
  /** true when this call built the entry. */
  built: boolean;
}

export function graphCacheEntry(dataDir: string, weightsSha256: string, config: Qwen2VLConfig): string {
  const key = createHash('sha256')
    .update(JSON.stringify({ format: GRAPH_FORMAT, config }))
    .digest('hex')
    .slice(0, 16);
  return join(dataDir, GRAPH_CACHE_DIR, weightsSha256, key);
}

function pathsIn(dir: string, built: boolean): ServingGraphPaths {
  const onnx = join(dir, 'onnx');
  return { vision: join(onnx, SERVING_FILES.vision), embed: join(onnx, SERVING_FILES.embed), decoder: join(onnx, SERVING_FILES.decoder), dir, built };
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/**
 * The cached graphs for these weights, building them first when absent: the weights are loaded
 * (checked again against `weightsSha256`, so a folder changed since it was hashed is refused)
 * and exported with each tensor released once written.
 */
export async function servingGraphsFor(
  folderDir: string,
  config: Qwen2VLConfig,
  weightsSha256: string,
  weightOpts: LoadWeightsOptions,
  opts: { dataDir: string; log?(message: string, fields?: Record<string, unknown>): void },
): Promise<ServingGraphPaths> {
  const target = graphCacheEntry(opts.dataDir, weightsSha256, config);
  const cached = pathsIn(target, false);
  if ((await isFile(cached.vision)) && (await isFile(cached.embed)) && (await isFile(cached.decoder))) {
    opts.log?.('serving graphs reused from the cache', { weights_sha256: weightsSha256 });
    return cached;
  }
  const started = performance.now();
  const loaded = await loadWeights(folderDir, weightOpts);
  if (loaded.sha256 !== weightsSha256) {
    throw new HfFolderError(`${folderDir}: the weight files changed while the model was loading; try again`, folderDir);
  }
  const parent = join(opts.dataDir, GRAPH_CACHE_DIR, weightsSha256);
  await mkdir(parent, { recursive: true });
  const tmp = tempPath(parent, 'graphs', 'directory');
  try {
    await mkdir(tmp);
    await exportQwen2VLServing(tmp, config, loaded.weights, { logits: 'last', present: 'new', release: true });
    await syncDirectory(join(tmp, 'onnx'));
    const outcome = await renameIntoPlace(tmp, target);
    opts.log?.('serving graphs built and cached', {
      weights_sha256: weightsSha256,
      seconds: Math.round((performance.now() - started) / 100) / 10,
      outcome,
    });
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
  return pathsIn(target, true);
}
