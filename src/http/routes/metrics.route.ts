// GET /metrics: Prometheus text exposition of the app's own registry.
import { Router } from 'express';
import type { Metrics } from '../../metrics/metrics.ts';

export function metricsRouter(deps: { metrics: Metrics }): Router {
  const router = Router();
  router.get('/metrics', async (_req, res) => {
    const body = await deps.metrics.render();
    res.setHeader('Content-Type', deps.metrics.contentType());
    res.send(body);
  });
  return router;
}
