// Per-request facts the middleware chain fills in and later stages read: request id, the matched
// contract operation, the caller, and what the audit trail should record. Kept in res.locals under
// one key (not by augmenting express's Request type) so routers written elsewhere are unaffected.
import type { Request, Response } from 'express';
import type { Role } from '../config.ts';
import type { Operation } from './openapi/spec.ts';

export interface Caller {
  keyId: string;
  role: Role;
}

export interface AuditFacts {
  model?: string;
  variant?: string;
  imageSha256?: string;
  /** What an admin request did, when more specific than its route (e.g. `ab_table.replace`). */
  action?: string;
  /** Admin-action details: versions, model ids, weights. Never request content. */
  details?: Record<string, unknown>;
}

export interface RequestContext {
  requestId: string;
  startedAt: number;
  operation?: Operation;
  /** Path parameters of the matched operation. */
  params: Record<string, string>;
  caller?: Caller;
  audit: AuditFacts;
}

const KEY = 'clinvqa';

export function initContext(res: Response, requestId: string): RequestContext {
  const ctx: RequestContext = { requestId, startedAt: performance.now(), params: {}, audit: {} };
  res.locals[KEY] = ctx;
  return ctx;
}

/** The context set by the request-id middleware (always first in the chain). */
export function contextOf(res: Response): RequestContext {
  const ctx = res.locals[KEY] as RequestContext | undefined;
  if (!ctx) throw new Error('request context missing: request-id middleware must run first');
  return ctx;
}

/** Route label for metrics and the audit log: the contract's path template, never the raw URL. */
export function routeLabel(req: Request, res: Response): string {
  const ctx = res.locals[KEY] as RequestContext | undefined;
  if (ctx?.operation) return ctx.operation.template;
  return req.path.startsWith('/admin/') ? '/admin/(other)' : '(unmatched)';
}
