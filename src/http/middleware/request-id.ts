// Gives every request an id: the client's X-Request-Id when it is well-formed (so a hospital's
// gateway can correlate), otherwise a fresh one. Echoed in the response header, in problem
// documents and in the audit log.
import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';
import { initContext } from '../request-context.ts';

const WELL_FORMED = /^[A-Za-z0-9._:-]{8,128}$/;

export function requestId(): RequestHandler {
  return (req, res, next) => {
    const offered = req.get('x-request-id');
    const id = offered !== undefined && WELL_FORMED.test(offered) ? offered : `req_${randomUUID()}`;
    initContext(res, id);
    res.setHeader('X-Request-Id', id);
    next();
  };
}
