// Per-key rate limiting: every authenticated request takes a token from its key's bucket, sized
// by the key's role (CLINVQA_RATE_LIMIT_<ROLE> per second, CLINVQA_RATE_BURST_<ROLE> at once).
// Over the limit: 429 + Retry-After, before the body is parsed, so one busy key cannot take the
// decode and inference capacity the other keys share.
import type { RequestHandler } from 'express';
import type { RateLimit, Role } from '../../config.ts';
import { ApiError } from '../../errors.ts';
import { TokenBuckets } from '../rate-limit/token-bucket.ts';
import { contextOf } from '../request-context.ts';

export function rateLimit(limits: Readonly<Record<Role, RateLimit>>, buckets = new TokenBuckets()): RequestHandler {
  return (_req, res, next) => {
    const caller = contextOf(res).caller;
    if (!caller) return next();
    const limit = limits[caller.role];
    const taken = buckets.take(caller.keyId, limit);
    if (taken.allowed) return next();
    next(
      ApiError.of(
        'rate_limited',
        `This API key is limited to ${limit.perSecond} requests per second (bursts of ${limit.burst}); retry after ${taken.retryAfterSeconds} s.`,
        {
          headers: { 'Retry-After': String(taken.retryAfterSeconds) },
        },
      ),
    );
  };
}
