// Liveness (the process answers) and readiness (a model is loaded and we are not draining), for
// orchestrators. Readiness turns 503 the moment shutdown begins, so load balancers stop sending
// new work while in-flight requests finish.
import { Router } from 'express';
import { ApiError } from '../../errors.ts';
import type { ModelRegistry } from '../../runtime/model-registry.ts';

export interface HealthDeps {
  registry: ModelRegistry;
  isDraining(): boolean;
}

export function healthRouter(deps: HealthDeps): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', (_req, res) => {
    if (deps.isDraining()) throw ApiError.of('not_ready', 'The server is shutting down.', { headers: { 'Retry-After': '5' } });
    const models = deps.registry.list().map((m) => m.id);
    if (models.length === 0) throw ApiError.of('not_ready', 'No model is loaded yet.', { headers: { 'Retry-After': '5' } });
    res.json({ status: 'ready', models });
  });
  return router;
}
