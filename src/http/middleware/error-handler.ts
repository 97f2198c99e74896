// The one place errors become HTTP responses: every error is translated (../error-translation.ts)
// and rendered as its problem document, or in OpenAI's error shape on the routes the contract marks
// OpenAI-compatible (decided here by the request path, so errors raised by any middleware get it);
// an untranslatable error is a 500 whose detail says nothing about internals (the log gets the
// stack, keyed by request id).
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ApiError, toOpenAiError, toProblem } from '../../errors.ts';
import type { Logger } from '../../audit/logger.ts';
import type { ErrorFormat } from '../openapi/spec.ts';
import { contextOf } from '../request-context.ts';
import { toApiError } from '../error-translation.ts';

export function notFound(): RequestHandler {
  return (req, _res, next) => next(ApiError.of('not_found', `No route ${req.method} ${req.path}.`));
}

export interface ErrorHandlerOptions {
  /** The error format of a request path (from the contract); RFC 7807 when absent. */
  errorFormatOf?(urlPath: string): ErrorFormat;
}

export function errorHandler(logger: Logger, options: ErrorHandlerOptions = {}): ErrorRequestHandler {
  return (error: unknown, req, res, _next) => {
    const ctx = contextOf(res);
    const apiError = toApiError(error);
    if (apiError.status >= 500 && apiError.code === 'internal_error') {
      logger.error('unhandled error', {
        request_id: ctx.requestId,
        route: ctx.operation?.template,
        error: error instanceof Error ? `${error.name}: ${error.message}` : typeof error,
        stack: error instanceof Error ? error.stack : undefined,
      });
    }
    if (res.headersSent) {
      // Already answered in full (e.g. by the shutdown's grace-end 503): leave it to flush.
      if (res.writableEnded) return;
      // Too late for a problem document (e.g. mid-stream); cut the connection so the client notices.
      res.destroy();
      return;
    }
    res.status(apiError.status);
    for (const [name, value] of Object.entries(apiError.headers)) res.setHeader(name, value);
    if (options.errorFormatOf?.(req.path) === 'openai') {
      res.type('application/json');
      res.send(JSON.stringify(toOpenAiError(apiError)));
      return;
    }
    res.type('application/problem+json');
    res.send(JSON.stringify(toProblem(apiError, { requestId: ctx.requestId, instance: req.originalUrl.split('?')[0] })));
  };
}
