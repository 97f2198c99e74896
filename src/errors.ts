// The one error type that crosses the HTTP boundary. Everything a client can be told about a failed
// request is an ApiError(status, code, detail); the error handler renders it as RFC 7807
// application/problem+json, or in OpenAI's error shape on the OpenAI-compatible routes. Other modules throw their own typed errors (ImageInputError,
// QueueFullError, ...) and http/error-translation.ts turns them into ApiErrors in one place.

/** Stable machine-readable codes; clients branch on `code`, never on `detail` wording. */
export const ERROR_CATALOGUE = {
  invalid_request: { status: 400, title: 'The request does not match the API contract' },
  bad_json: { status: 400, title: 'The body is not valid JSON' },
  bad_base64: { status: 400, title: 'The image is not valid base64' },
  image_missing: { status: 400, title: 'No image was sent' },
  image_url_not_supported: { status: 400, title: 'Only data: URLs are accepted for images' },
  question_empty: { status: 400, title: 'The question is empty' },
  context_length_exceeded: { status: 400, title: "The prompt does not fit the model's context" },
  unsupported_parameter: { status: 400, title: 'The request asks for something this server does not do' },
  unauthorized: { status: 401, title: 'A valid API key is required' },
  forbidden: { status: 403, title: 'This API key may not use this route' },
  not_found: { status: 404, title: 'No such route' },
  model_not_found: { status: 404, title: 'No such model is loaded' },
  response_not_found: { status: 404, title: 'No such response id' },
  job_not_found: { status: 404, title: 'No such fine-tune job' },
  invalid_upload: { status: 422, title: 'The uploaded training data is not valid' },
  method_not_allowed: { status: 405, title: 'Method not allowed on this route' },
  conflict: { status: 409, title: 'The request conflicts with the current state' },
  payload_too_large: { status: 413, title: 'The request body is too large' },
  image_too_large_bytes: { status: 413, title: 'The image file is too large' },
  image_too_large_pixels: { status: 413, title: 'The image has too many pixels' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  dicom_unsupported_transfer_syntax: { status: 415, title: 'Unsupported DICOM transfer syntax' },
  dicom_unsupported_pixel_format: { status: 415, title: 'Unsupported DICOM pixel format' },
  image_unreadable: { status: 422, title: 'The image could not be decoded' },
  invalid_ab_table: { status: 422, title: 'The A/B table is not valid' },
  model_load_failed: { status: 422, title: 'The model package could not be loaded' },
  rate_limited: { status: 429, title: 'Too many requests for this API key' },
  internal_error: { status: 500, title: 'Internal server error' },
  not_ready: { status: 503, title: 'The server is not ready' },
  queue_full: { status: 503, title: 'The server is at capacity' },
  model_unavailable: { status: 503, title: 'The model is not available right now' },
  database_unavailable: { status: 503, title: 'The shared database is not reachable right now' },
  inference_timeout: { status: 504, title: 'The model did not answer in time' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface ApiErrorOptions {
  /** Extra response headers, e.g. Retry-After on 503 or WWW-Authenticate on 401. */
  headers?: Record<string, string>;
  /** Extension members of the problem document (RFC 7807 §3.2), e.g. validation `errors`. */
  extensions?: Record<string, unknown>;
  cause?: unknown;
}

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly headers: Record<string, string>;
  readonly extensions: Record<string, unknown>;

  /** `detail` is shown to the client: no internal paths, no patient data. */
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    readonly detail: string,
    options: ApiErrorOptions = {},
  ) {
    super(detail, { cause: options.cause });
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
  }

  /** An ApiError whose status is the catalogue's for `code`. */
  static of(code: ErrorCode, detail: string, options?: ApiErrorOptions): ApiError {
    return new ApiError(ERROR_CATALOGUE[code].status, code, detail, options);
  }
}

export interface ProblemDocument {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance?: string;
  request_id?: string;
  [extension: string]: unknown;
}

export function problemTypeUri(code: ErrorCode): string {
  return `urn:clinvqa:problem:${code}`;
}

export function toProblem(error: ApiError, context: { requestId?: string; instance?: string } = {}): ProblemDocument {
  const entry = ERROR_CATALOGUE[error.code];
  return {
    ...error.extensions,
    type: problemTypeUri(error.code),
    title: entry.title,
    status: error.status,
    detail: error.detail,
    code: error.code,
    ...(context.instance !== undefined ? { instance: context.instance } : {}),
    ...(context.requestId !== undefined ? { request_id: context.requestId } : {}),
  };
}

/** OpenAI's error body, which the OpenAI SDKs read `message`, `type`, `param` and `code` from. */
export interface OpenAiErrorBody {
  error: { message: string; type: string; param: string | null; code: ErrorCode };
}

/** OpenAI's `type` by status class; clients branch on `code` (the same codes as the problem documents). */
function openAiErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/**
 * The request field an error is about, in OpenAI's notation (`messages[0].content`), from the first
 * issue's JSON pointer (`/messages/0/content`); path parameters and headers by their name.
 */
function openAiParam(error: ApiError): string | null {
  const issues = error.extensions.errors;
  const pointer = Array.isArray(issues) ? (issues[0] as { path?: unknown } | undefined)?.path : undefined;
  if (typeof pointer !== 'string' || pointer === '' || pointer === '/') return null;
  const segments = pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  if ((segments[0] === 'path' || segments[0] === 'headers') && segments.length === 2) return segments[1]!;
  return segments.reduce((param, segment) => (/^\d+$/.test(segment) ? `${param}[${segment}]` : param === '' ? segment : `${param}.${segment}`), '');
}

export function toOpenAiError(error: ApiError): OpenAiErrorBody {
  return { error: { message: error.detail, type: openAiErrorType(error.status), param: openAiParam(error), code: error.code } };
}
