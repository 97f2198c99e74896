// Receives the multipart body of POST /admin/fine-tunes: text fields plus file parts `training_file`,
// `images` (repeated) and `archive`. A small multer storage engine keeps parts in memory but with a
// limit per kind of part (an image may not be archive-sized) and one over the whole upload, both
// enforced while streaming. Every failure becomes an ApiError (413 for sizes, 400/422 otherwise).
import type { Request, RequestHandler } from 'express';
import multer from 'multer';
import { ApiError } from '../../errors.ts';
import { RequestProblem, type ReceivedPart, type UploadLimits } from '../../jobs/upload-validation.ts';

const FIELD_BYTES = 64 * 1024;
const PARTS_KEY = 'fineTuneParts';

class PartTooLarge extends Error {}

function limitFor(field: string, limits: UploadLimits): number | undefined {
  if (field === 'training_file') return limits.maxJsonlBytes;
  if (field === 'images') return limits.maxImageBytes;
  if (field === 'archive') return limits.maxArchiveBytes;
  return undefined;
}

/** In-memory storage with per-field and per-request byte limits. */
function boundedMemoryStorage(limits: UploadLimits): multer.StorageEngine {
  const totalLimit = limits.maxArchiveBytes + limits.maxJsonlBytes;
  const totals = new WeakMap<Request, number>();
  return {
    _handleFile(req, file, cb) {
      const limit = limitFor(file.fieldname, limits);
      if (limit === undefined) {
        file.stream.resume();
        cb(new RequestProblem(`Unexpected file part "${file.fieldname}"; send training_file, images or archive.`, [{ path: `/${file.fieldname}`, message: 'unexpected file part' }]));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let done = false;
      const finish = (error: Error | null, info?: Partial<Express.Multer.File>) => {
        if (done) return;
        done = true;
        cb(error, info);
      };
      file.stream.on('data', (chunk: Buffer) => {
        if (done) return;
        size += chunk.length;
        const total = (totals.get(req) ?? 0) + chunk.length;
        totals.set(req, total);
        if (size > limit) {
          file.stream.resume();
          finish(new PartTooLarge(`The part "${file.fieldname}" (${file.originalname.slice(0, 100)}) is larger than the limit of ${limit} bytes.`));
        } else if (total > totalLimit) {
          file.stream.resume();
          finish(new PartTooLarge(`The upload is larger than the limit of ${totalLimit} bytes.`));
        } else {
          chunks.push(chunk);
        }
      });
      file.stream.on('error', (error: Error) => finish(error));
      file.stream.on('end', () => finish(null, { buffer: Buffer.concat(chunks), size }));
    },
    _removeFile(_req, file, cb) {
      (file as { buffer?: Buffer }).buffer = undefined;
      cb(null);
    },
  };
}

function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof PartTooLarge) return ApiError.of('payload_too_large', error.message);
  if (error instanceof RequestProblem) return requestProblemToApiError(error);
  if (error instanceof multer.MulterError) {
    switch (error.code) {
      case 'LIMIT_FILE_COUNT':
      case 'LIMIT_PART_COUNT':
      case 'LIMIT_FILE_SIZE':
        return ApiError.of('payload_too_large', `The upload breaks a limit (${error.code}): too many or too large parts.`);
      case 'LIMIT_FIELD_VALUE':
      case 'LIMIT_FIELD_COUNT':
      case 'LIMIT_FIELD_KEY':
        return ApiError.of('invalid_upload', `The form field "${error.field ?? ''}" breaks a limit (${error.code}).`);
      default:
        return ApiError.of('invalid_request', `The multipart body breaks a limit (${error.code}).`);
    }
  }
  const message = error instanceof Error ? error.message : String(error);
  return ApiError.of('invalid_request', `The multipart body is malformed: ${message.slice(0, 200)}`, { cause: error });
}

/** RequestProblem → 422 (or 413) problem document listing every problem under `errors`. */
export function requestProblemToApiError(problem: RequestProblem): ApiError {
  const extensions = problem.problems.length ? { extensions: { errors: problem.problems.slice(0, 50) } } : {};
  return problem.status === 413 ? ApiError.of('payload_too_large', problem.message, extensions) : ApiError.of('invalid_upload', problem.message, extensions);
}

export function receiveFineTuneUpload(limits: UploadLimits): RequestHandler {
  const parse = multer({
    storage: boundedMemoryStorage(limits),
    preservePath: true,
    limits: { files: limits.maxFiles + 2, fields: 16, fieldSize: FIELD_BYTES, parts: limits.maxFiles + 18 },
  }).any();
  return (req, res, next) => {
    if (!req.is('multipart/form-data')) {
      next(ApiError.of('unsupported_media_type', 'Send the fine-tune upload as multipart/form-data.'));
      return;
    }
    parse(req, res, (error?: unknown) => {
      if (error !== undefined && error !== null) return next(toApiError(error));
      const files = (req.files ?? []) as Express.Multer.File[];
      res.locals[PARTS_KEY] = files.map((f): ReceivedPart => ({ field: f.fieldname, filename: f.originalname, data: f.buffer }));
      next();
    });
  };
}

export function receivedParts(res: { locals: Record<string, unknown> }): ReceivedPart[] {
  return (res.locals[PARTS_KEY] as ReceivedPart[] | undefined) ?? [];
}
