// GET /v1/models and /v1/models/{id}: the loaded models with their manifests (model cards), in
// OpenAI's list shape. A model's id is its package directory name.
import { Router } from 'express';
import { ApiError } from '../../errors.ts';
import type { LoadedModel, ModelRegistry } from '../../runtime/model-registry.ts';

export function toModelJson(model: LoadedModel): Record<string, unknown> {
  const createdAt = Date.parse(String(model.runtime.manifest.created_at ?? ''));
  return {
    id: model.id,
    object: 'model',
    created: Math.floor((Number.isFinite(createdAt) ? createdAt : model.loadedAt.getTime()) / 1000),
    owned_by: 'clinvqa',
    ...(model.runtime.executionProvider !== undefined ? { execution_provider: model.runtime.executionProvider } : {}),
    manifest: model.runtime.manifest,
  };
}

export function modelsRouter(deps: { registry: ModelRegistry }): Router {
  const router = Router();
  router.get('/v1/models', (_req, res) => {
    res.json({ object: 'list', data: deps.registry.list().map(toModelJson) });
  });
  router.get('/v1/models/:id', (req, res) => {
    const model = deps.registry.list().find((m) => m.id === req.params.id);
    if (!model) throw ApiError.of('model_not_found', `No model "${req.params.id}" is loaded.`);
    res.json(toModelJson(model));
  });
  return router;
}
