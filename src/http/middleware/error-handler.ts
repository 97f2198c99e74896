// The one place errors become HTTP responses: ApiError → its problem document (or OpenAI's error
// shape on the routes the contract marks OpenAI-compatible, decided here by the request path so
// errors raised by any middleware get it); the body parser's errors → bad_json / payload_too_large;
// anything else → a 500 whose detail says nothing about internals (the log gets the stack, keyed
// by request id).
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { ApiError, toOpenAiError, toProblem } from '../../errors.ts';
import type { Logger } from '../../audit/logger.ts';
import type { ErrorFormat } from '../openapi/spec.ts';
import { contextOf } from '../request-context.ts';
import { toApiError } from '../../serving/error-mapping.ts';

interface BodyParserError {
  type?: string;
  status?: number;
  limit?: number;
}

function fromBodyParser(error: unknown): ApiError | undefined {
  const e = error as BodyParserError;
  if (typeof e !== 'object' || e === null || typeof e.type !== 'string') return undefined;
  switch (e.type) {
    case 'entity.parse.failed':
      return ApiError.of('bad_json', 'The body is not valid JSON.');
    case 'entity.too.large':
      return ApiError.of('payload_too_large', `The body is larger than the limit of ${e.limit ?? 'the server'} bytes.`);
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return ApiError.of('unsupported_media_type', 'The body must be UTF-8 encoded.');
    case 'request.aborted':
    case 'request.size.invalid':
      return ApiError.of('invalid_request', 'The body ended before its declared length.');
    default:
      return undefined;
  }
}

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
    const apiError = fromBodyParser(error) ?? toApiError(error);
    if (apiError.status >= 500 && apiError.code === 'internal_error') {
      logger.error('unhandled error', {
        request_id: ctx.requestId,
        route: ctx.operation?.template,
        error: error instanceof Error ? `${error.name}: ${error.message}` : typeof error,
        stack: error instanceof Error ? error.stack : undefined,
      });
    }
    if (res.headersSent) {
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
