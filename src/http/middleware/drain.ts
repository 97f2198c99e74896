// While the server drains for shutdown: every response asks the client to close its connection
// (so keep-alive sockets do not pin the process), and new inferences are refused with 503 so a
// load balancer retries them on another replica. Requests already inside run to completion.
import type { RequestHandler } from 'express';
import { ApiError } from '../../errors.ts';
import { contextOf } from '../request-context.ts';
import { IMAGE_OPERATIONS } from './upload.ts';

export function abortWhenDraining(isDraining: () => boolean): RequestHandler {
  return (req, res, next) => {
    if (!isDraining()) return next();
    res.setHeader('Connection', 'close');
    const operation = contextOf(res).operation;
    if (!operation || !IMAGE_OPERATIONS.has(operation.operationId)) return next();
    const refuse = (): void => next(ApiError.of('not_ready', 'The server is shutting down; retry on another instance.', { headers: { 'Retry-After': '1' } }));
    // The body is read (and dropped) before answering: closing a socket with unread bytes in it
    // makes the kernel send RST, and the client would see a reset instead of this 503.
    if (req.readableEnded) return refuse();
    req.once('end', refuse);
    req.resume();
  };
}
