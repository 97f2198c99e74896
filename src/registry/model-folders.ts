// What the models directory serves: our packages (a manifest.json) and Hugging Face folders as
// downloaded (a config.json, no manifest). Either way the directory name is the model id clients use.
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { isValidPackageId, MANIFEST_FILE, PACKAGE_ID_PATTERN } from './manifest.ts';

export interface ModelFolder {
  id: string;
  dir: string;
  kind: 'package' | 'huggingface';
}

export interface ModelFolderListing {
  folders: ModelFolder[];
  /** Directories that look like models but cannot be served under their name, with the reason. */
  skipped: { name: string; reason: string }[];
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** Model directories directly under `modelsDir`, sorted by name; a missing directory has none. */
export async function listModelFolders(modelsDir: string): Promise<ModelFolderListing> {
  let names: string[];
  try {
    names = await readdir(modelsDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { folders: [], skipped: [] };
    throw error;
  }
  const folders: ModelFolder[] = [];
  const skipped: ModelFolderListing['skipped'] = [];
  for (const name of names.sort()) {
    if (name.startsWith('.')) continue; // writes in progress, hidden files
    const dir = join(modelsDir, name);
    const kind = (await isFile(join(dir, MANIFEST_FILE))) ? 'package' : (await isFile(join(dir, 'config.json'))) ? 'huggingface' : undefined;
    if (kind === undefined) continue;
    if (!isValidPackageId(name)) {
      const suggestion = String(name)
        .toLowerCase()
        .replace(/[^a-z0-9._-]/g, '-');
      skipped.push({ name, reason: `the directory name is not a valid model id (${PACKAGE_ID_PATTERN}); rename it, e.g. to "${suggestion}"` });
      continue;
    }
    folders.push({ id: name, dir, kind });
  }
  return { folders, skipped };
}
