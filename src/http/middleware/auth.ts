// Bearer-key authentication and role checks. The roles a route needs come from the contract
// (`security` and `x-roles` in openapi.yaml), so the document clients read is the one enforced.
// Keys are compared by SHA-256 in constant time; only the key id ever reaches logs.
import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { hashApiKey, type ApiKeyEntry, type Role } from '../../config.ts';
import { ApiError } from '../../errors.ts';
import { contextOf, type Caller } from '../request-context.ts';

export interface AuthOptions {
  apiKeys: readonly ApiKeyEntry[];
  /** No keys configured and the operator asked for it: every caller is an admin. */
  insecureDev: boolean;
}

const CHALLENGE = { 'WWW-Authenticate': 'Bearer realm="clinvqa"' };

/** The caller a raw key belongs to, or undefined. Every entry is compared, match or not. */
export function identify(key: string, apiKeys: readonly ApiKeyEntry[]): Caller | undefined {
  const hash = hashApiKey(key);
  let found: ApiKeyEntry | undefined;
  for (const entry of apiKeys) {
    if (timingSafeEqual(entry.hash, hash) && !found) found = entry;
  }
  return found ? { keyId: found.keyId, role: found.role } : undefined;
}

/**
 * Runs after the operation is resolved. Public operations pass; others need a known key whose
 * role is in the operation's `x-roles`. Paths outside the contract still need a key, and an
 * admin key under /admin, so a router mounted before its contract entry is never left open.
 */
export function authenticate(options: AuthOptions): RequestHandler {
  return (req, res, next) => {
    const ctx = contextOf(res);
    const operation = ctx.operation;
    if (operation && !operation.authenticated) return next();
    const required: readonly Role[] = operation ? (operation.roles as Role[]) : req.path.startsWith('/admin/') || req.path === '/admin' ? ['admin'] : [];

    if (options.insecureDev && options.apiKeys.length === 0) {
      ctx.caller = { keyId: 'insecure-dev', role: 'admin' };
      return next();
    }
    const header = req.get('authorization');
    if (header === undefined || header.trim() === '') {
      return next(ApiError.of('unauthorized', 'Send an API key as "Authorization: Bearer <key>".', { headers: CHALLENGE }));
    }
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
    if (!match) {
      return next(ApiError.of('unauthorized', 'The Authorization header must be "Bearer <key>".', { headers: CHALLENGE }));
    }
    const caller = identify(match[1]!, options.apiKeys);
    if (!caller) return next(ApiError.of('unauthorized', 'The API key is not recognised.', { headers: CHALLENGE }));
    ctx.caller = caller;
    if (required.length > 0 && !required.includes(caller.role)) {
      return next(ApiError.of('forbidden', `This route needs a key with role ${required.join(' or ')}.`));
    }
    next();
  };
}
