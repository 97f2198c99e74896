// Admin model lifecycle without a restart: POST /admin/models/{id}/load loads (or atomically
// replaces) the package <id>, shipped or registered (see registry/model-sources.ts); DELETE /admin/models/{id} stops serving one the A/B table
// no longer routes to. The registry's leases let in-flight requests finish on the old runtime.
// (Promote and rollback change the A/B table and live with it, in admin-ab.route.ts.)
import { Router } from 'express';
import { ApiError } from '../../errors.ts';
import type { Logger } from '../../audit/logger.ts';
import type { ModelRegistry } from '../../runtime/model-registry.ts';
import { findServedPackage, withoutServerPaths, type ModelSources } from '../../registry/model-sources.ts';
import { contextOf } from '../request-context.ts';
import { toModelJson } from './models.route.ts';

export interface AdminModelsDeps {
  registry: ModelRegistry;
  sources: ModelSources;
  /** Whether the A/B table in effect sends traffic to this model (then it may not be unloaded). */
  isRouted(id: string): boolean;
  /** After the set of loaded models changed (the default A/B table follows it; other replicas are told). */
  onChange?(change: { id: string; state: 'loaded' | 'unloaded'; packageDir: string }): void | Promise<void>;
  logger: Logger;
}

export function adminModelsRouter(deps: AdminModelsDeps): Router {
  const router = Router();
  router.post('/admin/models/:id/load', async (req, res) => {
    const id = req.params.id;
    const ctx = contextOf(res);
    ctx.audit.model = id;
    ctx.audit.action = 'model_load';
    const pkg = await findServedPackage(deps.sources, id);
    if (!pkg) throw ApiError.of('model_not_found', `No package "${id}" among the shipped or registered models.`);
    let loaded: Awaited<ReturnType<typeof deps.registry.loadPackage>>;
    try {
      loaded = await deps.registry.loadPackage(pkg.dir);
    } catch (error) {
      deps.logger.warn('model load failed', { model: id, request_id: ctx.requestId, error: error instanceof Error ? error.message : String(error) });
      // Package errors name files inside the package; the server's directories are not shown.
      const message = withoutServerPaths(deps.sources, error instanceof Error ? error.message : String(error));
      throw ApiError.of('model_load_failed', `Package "${id}" could not be loaded: ${message.slice(0, 300)}`);
    }
    await deps.onChange?.({ id, state: 'loaded', packageDir: pkg.dir });
    res.json(toModelJson(loaded));
  });
  router.delete('/admin/models/:id', async (req, res) => {
    const id = req.params.id;
    const ctx = contextOf(res);
    ctx.audit.model = id;
    ctx.audit.action = 'model_unload';
    if (!deps.registry.has(id)) throw ApiError.of('model_not_found', `No model "${id}" is loaded.`);
    if (deps.isRouted(id)) throw ApiError.of('conflict', `The A/B table still sends traffic to "${id}"; change the table first.`);
    await deps.registry.unload(id);
    await deps.onChange?.({ id, state: 'unloaded', packageDir: (await findServedPackage(deps.sources, id))?.dir ?? id });
    res.status(204).end();
  });
  return router;
}
