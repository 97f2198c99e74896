// Admin model lifecycle without a restart: POST /admin/models/{id}/load loads (or atomically
// replaces) the package models/<id>/; DELETE /admin/models/{id} stops serving one the A/B table
// no longer routes to. The registry's leases let in-flight requests finish on the old runtime.
// (Promote and rollback change the A/B table and live with it, in admin-ab.route.ts.)
import path from 'node:path';
import { Router } from 'express';
import { ApiError } from '../../errors.ts';
import type { Logger } from '../../audit/logger.ts';
import type { ModelRegistry } from '../../runtime/model-registry.ts';
import { listModelPackages } from '../../registry/model-package.ts';
import { contextOf } from '../request-context.ts';
import { toModelJson } from './models.route.ts';

export interface AdminModelsDeps {
  registry: ModelRegistry;
  modelsDir: string;
  /** Whether the A/B table in effect sends traffic to this model (then it may not be unloaded). */
  isRouted(id: string): boolean;
  /** After the set of loaded models changed (the default A/B table follows it). */
  onChange?(): void;
  logger: Logger;
}

export function adminModelsRouter(deps: AdminModelsDeps): Router {
  const router = Router();
  router.post('/admin/models/:id/load', async (req, res) => {
    const id = req.params.id;
    const ctx = contextOf(res);
    ctx.audit.model = id;
    ctx.audit.action = 'model_load';
    const packages = await listModelPackages(deps.modelsDir);
    if (!packages.some((p) => p.id === id)) throw ApiError.of('model_not_found', `No package "${id}" in the models directory.`);
    let loaded;
    try {
      loaded = await deps.registry.loadPackage(path.join(deps.modelsDir, id));
    } catch (error) {
      deps.logger.warn('model load failed', { model: id, request_id: ctx.requestId, error: error instanceof Error ? error.message : String(error) });
      // Package errors name files inside the package; the models directory itself is not shown.
      const message = (error instanceof Error ? error.message : String(error)).split(deps.modelsDir).join('models');
      throw ApiError.of('model_load_failed', `Package "${id}" could not be loaded: ${message.slice(0, 300)}`);
    }
    deps.onChange?.();
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
    deps.onChange?.();
    res.status(204).end();
  });
  return router;
}
