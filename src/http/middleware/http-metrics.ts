// Request count and latency by route template, method and status, observed when the response ends.
import type { RequestHandler } from 'express';
import type { Metrics } from '../../metrics/metrics.ts';
import { contextOf, routeLabel } from '../request-context.ts';
import { CLIENT_CLOSED } from './audit-trail.ts';

export function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    let observed = false;
    const observe = (status: number): void => {
      if (observed) return;
      observed = true;
      metrics.observeHttp(routeLabel(req, res), req.method, status, (performance.now() - contextOf(res).startedAt) / 1000);
    };
    res.on('finish', () => observe(res.statusCode));
    res.on('close', () => observe(res.writableFinished ? res.statusCode : CLIENT_CLOSED));
    next();
  };
}
