// Errors as values, mapped to HTTP in one place: the typed errors of preprocessing, the batcher
// and the services become ApiErrors with their catalogue codes; anything unknown is a 500 that
// tells the client nothing about internals.
import { ApiError } from '../errors.ts';
import { ImageInputError } from '../preprocess/errors.ts';
import { InferenceTimeoutError, QueueFullError, RequestCancelledError } from '../runtime/batcher.ts';
import { PromptTooLongError } from '../runtime/prompt.ts';
import { isUnavailable } from '../store/postgres.ts';

export function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  if (error instanceof ImageInputError) return ApiError.of(error.code, error.message);
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
  if (error instanceof InferenceTimeoutError) {
    return ApiError.of('inference_timeout', `The model did not answer within ${error.timeoutMs} ms.`);
  }
  if (error instanceof RequestCancelledError) {
    // Only reached if the client is gone; nobody reads this response.
    return ApiError.of('invalid_request', 'The request was cancelled.');
  }
  if (isUnavailable(error)) {
    // Admin writes and reports need the shared database; inference never does.
    return ApiError.of('database_unavailable', 'The shared database is not reachable right now; retry shortly.', { headers: { 'Retry-After': '5' }, cause: error });
  }
  return ApiError.of('internal_error', 'An unexpected error occurred; the request id identifies it in the server log.', { cause: error });
}
