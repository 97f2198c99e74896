// Receives the multipart body of POST /admin/fine-tunes: text fields plus file parts `training_file`,
// `images` (repeated) and `archive`. A small multer storage engine keeps parts in memory but with a
// limit per kind of part (an image may not be archive-sized) and one over the whole upload, both
// enforced while streaming. Failures are translated with the upload's context (413 for sizes, 400/422 otherwise).
import type { Request, RequestHandler } from 'express';
import multer from 'multer';
import { ApiError } from '../../errors.ts';
import { RequestProblem, type ReceivedPart, type UploadLimits } from '../../jobs/upload-validation.ts';
import { toApiError } from '../error-translation.ts';

const FIELD_BYTES = 64 * 1024;
const PARTS_KEY = 'fineTuneParts';

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
        cb(
          new RequestProblem(`Unexpected file part "${file.fieldname}"; send training_file, images or archive.`, [
            { path: `/${file.fieldname}`, message: 'unexpected file part' },
          ]),
        );
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
          finish(new RequestProblem(`The part "${file.fieldname}" (${file.originalname.slice(0, 100)}) is larger than the limit of ${limit} bytes.`, [], 413));
        } else if (total > totalLimit) {
          file.stream.resume();
          finish(new RequestProblem(`The upload is larger than the limit of ${totalLimit} bytes.`, [], 413));
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
      if (error !== undefined && error !== null) return next(toApiError(error, { upload: { kind: 'fine-tune' } }));
      const files = (req.files ?? []) as Express.Multer.File[];
      res.locals[PARTS_KEY] = files.map((f): ReceivedPart => ({ field: f.fieldname, filename: f.originalname, data: f.buffer }));
      next();
    });
  };
}

export function receivedParts(res: { locals: Record<string, unknown> }): ReceivedPart[] {
  return (res.locals[PARTS_KEY] as ReceivedPart[] | undefined) ?? [];
}
