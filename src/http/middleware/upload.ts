// Body parsing. Multipart parsing for image uploads: in memory (images are small and go straight to sharp), one
// file part named `image`, the byte limit enforced while streaming so an oversized upload is cut
// off early. Multer's and busboy's errors are translated with the upload's limits (error-translation.ts).
import express, { type RequestHandler } from 'express';
import multer from 'multer';
import { toApiError } from '../error-translation.ts';
import { contextOf } from '../request-context.ts';
import { mediaTypeOf } from './openapi-validate.ts';

export interface UploadOptions {
  maxImageBytes: number;
  /** Name of the file part. */
  field?: string;
}

// Enough for a 2,000-character question in any script (4 bytes per code point) plus slack.
const MAX_FIELD_BYTES = 16 * 1024;

export function imageUpload(options: UploadOptions): RequestHandler {
  const parse = multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: options.maxImageBytes, files: 1, fields: 16, parts: 17, fieldSize: MAX_FIELD_BYTES },
  }).single(options.field ?? 'image');
  return (req, res, next) => {
    parse(req, res, (error?: unknown) => {
      if (error === undefined || error === null) return next();
      next(toApiError(error, { upload: { kind: 'image', maxImageBytes: options.maxImageBytes } }));
    });
  };
}

/** Operations whose bodies carry an image, and so get the image-sized body limits. */
export const IMAGE_OPERATIONS = new Set(['answerQuestion', 'createChatCompletion']);
const SMALL_JSON_LIMIT = 64 * 1024;

/**
 * Body parsing by operation, before contract validation: multipart (image upload) and JSON with
 * a limit sized for a base64 image on inference routes, a small one elsewhere. Bodies of routes
 * outside the contract are left to their routers.
 */
export function parseBodies(options: UploadOptions): RequestHandler {
  const upload = imageUpload(options);
  // base64 is 4/3 of the bytes; the rest of the JSON (question, options) fits in the slack.
  const largeJson = express.json({ limit: Math.ceil((options.maxImageBytes * 4) / 3) + SMALL_JSON_LIMIT, strict: true });
  const smallJson = express.json({ limit: SMALL_JSON_LIMIT, strict: true });
  return (req, res, next) => {
    const operation = contextOf(res).operation;
    if (!operation || operation.requestBodies.size === 0) return next();
    const type = mediaTypeOf(req);
    const imageRoute = IMAGE_OPERATIONS.has(operation.operationId);
    if (type === 'multipart/form-data' && imageRoute) return upload(req, res, next);
    if (type === 'application/json') return (imageRoute ? largeJson : smallJson)(req, res, next);
    next();
  };
}
