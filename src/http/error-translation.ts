// The one place where errors become ApiErrors. Lower layers throw their own typed errors (or return
// them as values); routes and middleware let them propagate, and the error handler — or a body
// parser's callback, which has the upload's limits at hand — translates them here. A new domain
// error gets one translator in TRANSLATORS; anything no translator knows is a 500 that tells the
// client nothing about internals.
import multer from 'multer';
import { ApiError } from '../errors.ts';
import { FeedbackInputError, ResponseNotFoundError } from '../feedback/feedback-store.ts';
import { JobFinishedError, UnknownBaseModelError } from '../jobs/job-queue.ts';
import { RequestProblem } from '../jobs/upload-validation.ts';
import { ImageInputError } from '../preprocess/errors.ts';
import { AbTableConflictError, AbTableError, describeProblems } from '../routing/ab-table.ts';
import { InferenceTimeoutError, QueueFullError, RequestCancelledError } from '../runtime/batcher.ts';
import { PromptTooLongError } from '../runtime/prompt.ts';
import { isUnavailable } from '../store/postgres.ts';

/** Which body was being received, for errors whose meaning depends on it (multipart limits). */
export type UploadContext = { kind: 'image'; maxImageBytes: number } | { kind: 'fine-tune' };

export interface TranslationContext {
  upload?: UploadContext;
}

type Translator = (error: unknown, context: TranslationContext) => ApiError | undefined;

const runtimeErrors: Translator = (error) => {
  if (error instanceof QueueFullError) {
    return ApiError.of('queue_full', 'Too many requests are waiting for this model; retry later.', {
      headers: { 'Retry-After': String(error.retryAfterSeconds) },
    });
  }
  if (error instanceof PromptTooLongError) {
    return ApiError.of(
      'context_length_exceeded',
      `The question is ${error.promptTokens} tokens long; model "${error.model}" reads at most ${error.maxPromptTokens} tokens of question. Shorten the question.`,
      { extensions: { prompt_tokens: error.promptTokens, max_prompt_tokens: error.maxPromptTokens } },
    );
  }
  if (error instanceof InferenceTimeoutError) return ApiError.of('inference_timeout', `The model did not answer within ${error.timeoutMs} ms.`);
  // Only reached if the client is gone; nobody reads this response.
  if (error instanceof RequestCancelledError) return ApiError.of('invalid_request', 'The request was cancelled.');
  return undefined;
};

const imageErrors: Translator = (error) => (error instanceof ImageInputError ? ApiError.of(error.code, error.message) : undefined);

/** AbTableError → 400 (malformed) or 422 (cannot be put in effect), listing every problem; a rollback of a model that is not the promotion in effect → 409. */
const abTableErrors: Translator = (error) => {
  if (error instanceof AbTableConflictError) return ApiError.of('conflict', error.message);
  if (!(error instanceof AbTableError)) return undefined;
  const extensions = { errors: error.problems.map((p) => ({ path: p.path, message: p.message })) };
  return error.kind === 'malformed'
    ? ApiError.of('invalid_request', `The A/B table is malformed: ${describeProblems(error.problems)}.`, { extensions })
    : ApiError.of('invalid_ab_table', `The A/B table cannot be put in effect: ${describeProblems(error.problems)}.`, { extensions });
};

const feedbackErrors: Translator = (error) => {
  if (error instanceof ResponseNotFoundError) return ApiError.of('response_not_found', 'No answer with this response_id was recorded by this server.');
  if (error instanceof FeedbackInputError) return ApiError.of('invalid_request', error.message);
  return undefined;
};

const jobErrors: Translator = (error) => {
  if (error instanceof UnknownBaseModelError) {
    return ApiError.of('invalid_upload', `The base model "${error.baseModel}" is not in the models directory.`, {
      extensions: { errors: [{ path: '/base_model', message: 'unknown model' }] },
    });
  }
  if (error instanceof JobFinishedError) return ApiError.of('conflict', `The job cannot be cancelled: ${error.message}.`);
  return undefined;
};

/** An upload's content: 422 (or 413) listing every problem under `errors`. */
const uploadProblems: Translator = (error) => {
  if (!(error instanceof RequestProblem)) return undefined;
  const extensions = error.problems.length ? { extensions: { errors: error.problems.slice(0, 50) } } : {};
  return error.status === 413 ? ApiError.of('payload_too_large', error.message, extensions) : ApiError.of('invalid_upload', error.message, extensions);
};

/** express.json / body-parser failures, recognised by their `type`. */
const bodyParserErrors: Translator = (error) => {
  const e = error as { type?: unknown; limit?: number } | null;
  if (typeof e !== 'object' || e === null || typeof e.type !== 'string') return undefined;
  switch (e.type) {
    case 'entity.parse.failed':
      return ApiError.of('bad_json', 'The body is not valid JSON.', { cause: error });
    case 'entity.too.large':
      return ApiError.of('payload_too_large', `The body is larger than the limit of ${e.limit ?? 'the server'} bytes.`, { cause: error });
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return ApiError.of('unsupported_media_type', 'The body must be UTF-8 encoded.', { cause: error });
    case 'request.aborted':
    case 'request.size.invalid':
      return ApiError.of('invalid_request', 'The body ended before its declared length.', { cause: error });
    default:
      return undefined;
  }
};

/** multer's limits mean different things for the one-image upload and the fine-tune upload. */
const multipartErrors: Translator = (error, { upload }) => {
  if (!upload) return undefined;
  if (error instanceof multer.MulterError) {
    if (upload.kind === 'image') {
      switch (error.code) {
        case 'LIMIT_FILE_SIZE':
          return ApiError.of('image_too_large_bytes', `The image is larger than the limit of ${upload.maxImageBytes} bytes.`);
        case 'LIMIT_UNEXPECTED_FILE':
          return ApiError.of('invalid_request', `Unexpected file part "${error.field ?? ''}"; send the image as the part "image".`);
        case 'LIMIT_FIELD_VALUE':
          return ApiError.of('invalid_request', `The form field "${error.field ?? ''}" is too long.`);
      }
    } else {
      switch (error.code) {
        case 'LIMIT_FILE_COUNT':
        case 'LIMIT_PART_COUNT':
        case 'LIMIT_FILE_SIZE':
          return ApiError.of('payload_too_large', `The upload breaks a limit (${error.code}): too many or too large parts.`);
        case 'LIMIT_FIELD_VALUE':
        case 'LIMIT_FIELD_COUNT':
        case 'LIMIT_FIELD_KEY':
          return ApiError.of('invalid_upload', `The form field "${error.field ?? ''}" breaks a limit (${error.code}).`);
      }
    }
    return ApiError.of('invalid_request', `The multipart body breaks a limit (${error.code}).`);
  }
  // busboy: a malformed or truncated multipart body.
  const message = error instanceof Error ? error.message : String(error);
  return ApiError.of('invalid_request', `The multipart body is malformed: ${message.slice(0, 200)}`, { cause: error });
};

/** In order; the first translator that recognises the error wins. multipartErrors is last: it claims anything during an upload. */
const TRANSLATORS: readonly Translator[] = [
  imageErrors,
  runtimeErrors,
  abTableErrors,
  feedbackErrors,
  jobErrors,
  uploadProblems,
  bodyParserErrors,
  multipartErrors,
];

export function toApiError(error: unknown, context: TranslationContext = {}): ApiError {
  if (error instanceof ApiError) return error;
  for (const translate of TRANSLATORS) {
    const translated = translate(error, context);
    if (translated) return translated;
  }
  if (isUnavailable(error)) {
    // Admin writes, reports and fine-tune routes need the shared database; inference never does.
    return ApiError.of('database_unavailable', 'The shared database is not reachable right now; retry shortly.', {
      headers: { 'Retry-After': '5' },
      cause: error,
    });
  }
  return ApiError.of('internal_error', 'An unexpected error occurred; the request id identifies it in the server log.', { cause: error });
}
