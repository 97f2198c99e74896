// Run-time enforcement of openapi.yaml: (1) before the body is read, find the operation and check
// the Content-Type against the media types it accepts (415 otherwise); (2) after parsing, check
// path and header parameters and the body against the operation's schemas (400 with every issue
// listed). Path parameters are checked after authentication, so a caller without a key learns
// nothing about which ids are well-formed.
// Multipart fields arrive as strings, so they are coerced by their schema type first, as OpenAPI's
// form encoding prescribes.
import type { Request, RequestHandler } from 'express';
import { ApiError } from '../../errors.ts';
import type { SchemaIssue } from '../openapi/schema-validator.ts';
import type { OpenApiSpec } from '../openapi/spec.ts';
import { formToObject } from '../openapi/form-fields.ts';
import { contextOf } from '../request-context.ts';

/** The media type of the request without parameters, lower-cased; undefined when absent. */
export function mediaTypeOf(req: Request): string | undefined {
  const header = req.get('content-type');
  if (header === undefined) return undefined;
  const type = header.split(';')[0]!.trim().toLowerCase();
  return type === '' ? undefined : type;
}

function hasBody(req: Request): boolean {
  const length = req.get('content-length');
  return req.get('transfer-encoding') !== undefined || (length !== undefined && length !== '0');
}

export function resolveOperation(spec: OpenApiSpec): RequestHandler {
  return (req, res, next) => {
    const ctx = contextOf(res);
    const { found, pathExists } = spec.match(req.method, req.path);
    if (!found) {
      if (pathExists) return next(ApiError.of('method_not_allowed', `${req.method} is not allowed on ${req.path}.`));
      return next(); // outside the contract: auth still applies, then the not-found handler
    }
    ctx.operation = found.operation;
    ctx.params = found.params;
    const accepted = [...found.operation.requestBodies.keys()];
    if (accepted.length === 0) return next();
    const type = mediaTypeOf(req);
    if (type === undefined) {
      if (!found.operation.bodyRequired && !hasBody(req)) return next();
      return next(ApiError.of('unsupported_media_type', `Send a Content-Type: one of ${accepted.join(', ')}.`));
    }
    if (!accepted.includes(type)) {
      return next(ApiError.of('unsupported_media_type', `Content-Type ${type} is not accepted here; use one of ${accepted.join(', ')}.`));
    }
    next();
  };
}

/** Two rejections have their own catalogue codes so clients can tell them apart from the rest. */
function specificCode(issues: SchemaIssue[]): 'image_missing' | 'question_empty' | undefined {
  if (issues.length === 0) return undefined;
  if (issues.every((i) => i.path === '/image' && i.message === 'is required')) return 'image_missing';
  const blank = (i: SchemaIssue): boolean => i.path === '/question' && (i.message.startsWith('must have at least') || i.message.startsWith('must match'));
  if (issues.every(blank)) return 'question_empty';
  return undefined;
}

function describe(issues: SchemaIssue[]): string {
  const first = issues
    .slice(0, 3)
    .map((i) => `${i.path} ${i.message}`)
    .join('; ');
  return issues.length > 3 ? `${first}; and ${issues.length - 3} more` : first;
}

export function validateRequest(spec: OpenApiSpec): RequestHandler {
  return (req, res, next) => {
    const operation = contextOf(res).operation;
    if (!operation) return next();
    const issues: SchemaIssue[] = [];
    const params = contextOf(res).params;
    for (const [name, schema] of operation.pathParams) {
      issues.push(...spec.validator.validate(schema, params[name], `/path/${name}`));
    }
    for (const [name, schema] of operation.headerParams) {
      const value = req.get(name);
      if (value !== undefined) issues.push(...spec.validator.validate(schema, value, `/headers/${name}`));
    }
    const type = mediaTypeOf(req);
    const schema = type === undefined ? undefined : operation.requestBodies.get(type);
    if (schema !== undefined) {
      if (type === 'multipart/form-data') {
        const files: Record<string, Express.Multer.File> = {};
        if (req.file) files[req.file.fieldname] = req.file;
        req.body = formToObject(spec, schema, (req.body ?? {}) as Record<string, unknown>, files);
      }
      issues.push(...spec.validator.validate(schema, req.body));
    }
    if (issues.length === 0) return next();
    const code = specificCode(issues) ?? 'invalid_request';
    next(ApiError.of(code, `The request does not match the API contract: ${describe(issues)}.`, { extensions: { errors: issues.slice(0, 20) } }));
  };
}
