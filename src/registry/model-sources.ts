// Where served model packages come from: the shipped packages in the models directory (read-only,
// part of a release) and the packages registered at run time — fine-tunes — under the data
// directory (`<data dir>/models/<id>`), so nothing a server produces lands in the release tree or
// in another server's models. A model id names one package: an id found in both places is a clash,
// reported for the log and served from neither the second place nor by guess (the shipped one wins).
import path from 'node:path';
import { listModelPackages, type ModelPackageEntry } from './model-package.ts';

export interface ModelSources {
  /** Shipped packages (CLINVQA_MODELS_DIR). */
  shippedDir: string;
  /** Packages registered at run time (`<data dir>/models`). */
  registeredDir: string;
}

/** Packages registered at run time live here, under the server's own data directory. */
export function registeredModelsDir(dataDir: string): string {
  return path.join(dataDir, 'models');
}

export function modelSources(modelsDir: string, dataDir: string): ModelSources {
  return { shippedDir: modelsDir, registeredDir: registeredModelsDir(dataDir) };
}

export interface ModelIdClash {
  id: string;
  /** The package that is served. */
  served: string;
  /** The package with the same id that is not. */
  ignored: string;
}

/** Every package to serve, by id (shipped first), and the registered ones whose id a shipped one already has. */
export async function listServedPackages(sources: ModelSources): Promise<{ packages: ModelPackageEntry[]; clashes: ModelIdClash[] }> {
  const shipped = await listModelPackages(sources.shippedDir);
  const registered = path.resolve(sources.registeredDir) === path.resolve(sources.shippedDir) ? [] : await listModelPackages(sources.registeredDir);
  const byId = new Map(shipped.map((p) => [p.id, p]));
  const clashes: ModelIdClash[] = [];
  for (const pkg of registered) {
    const existing = byId.get(pkg.id);
    if (existing) clashes.push({ id: pkg.id, served: existing.dir, ignored: pkg.dir });
    else byId.set(pkg.id, pkg);
  }
  return { packages: [...byId.values()], clashes };
}

/** The package served under `id`, from either place, or undefined. */
export async function findServedPackage(sources: ModelSources, id: string): Promise<ModelPackageEntry | undefined> {
  return (await listServedPackages(sources)).packages.find((p) => p.id === id);
}

/** A message about a package with the servers' directories replaced by their roles, for clients. */
export function withoutServerPaths(sources: ModelSources, message: string): string {
  return message.split(sources.registeredDir).join('registered-models').split(sources.shippedDir).join('models');
}
