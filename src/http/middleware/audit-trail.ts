// Writes one audit entry when an inference, feedback or admin request ends (finished or aborted),
// from the facts the route left in the request context. Other routes (health, metrics, model
// listing) are not audited: they touch no patient data and change nothing.
import type { RequestHandler } from 'express';
import type { AuditSink } from '../../audit/audit-log.ts';
import { contextOf, routeLabel } from '../request-context.ts';

const AUDITED_OPERATIONS = new Set(['answerQuestion', 'createChatCompletion', 'recordFeedback']);

/** HTTP status recorded when the client disconnected before the response was complete. */
export const CLIENT_CLOSED = 499;

export function auditTrail(sink: AuditSink): RequestHandler {
  return (req, res, next) => {
    let written = false;
    const write = (status: number): void => {
      if (written) return;
      written = true;
      const ctx = contextOf(res);
      const operation = ctx.operation;
      const audited = operation ? AUDITED_OPERATIONS.has(operation.operationId) || operation.template.startsWith('/admin') : req.path.startsWith('/admin');
      if (!audited) return;
      const target = Object.values(ctx.params).join('/');
      sink.write({
        time: new Date().toISOString(),
        request_id: ctx.requestId,
        key_id: ctx.caller?.keyId ?? 'anonymous',
        role: ctx.caller?.role ?? null,
        method: req.method,
        route: routeLabel(req, res),
        target: target === '' ? null : target,
        action: ctx.audit.action ?? operation?.operationId ?? null,
        details: ctx.audit.details ?? null,
        model: ctx.audit.model ?? null,
        variant: ctx.audit.variant ?? null,
        image_sha256: ctx.audit.imageSha256 ?? null,
        status,
        duration_ms: Math.round(performance.now() - ctx.startedAt),
      });
    };
    res.on('finish', () => write(res.statusCode));
    res.on('close', () => write(res.writableFinished ? res.statusCode : CLIENT_CLOSED));
    next();
  };
}
