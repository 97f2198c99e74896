// POST /v1/feedback {response_id, correct | rating, correct_answer?} — closes the A/B loop.
// HTTP only: validate the body and hand it to the feedback store (its errors are translated at the edge).
// Roles: `clinician` or `admin`; enforced by the server's auth middleware mounted before this router.
// Feedback again on the same response replaces the earlier one (last wins; see feedback-store.ts).
// The body may carry `correct_answer` (clinical text): it is passed to the store only — never into a
// log line, a metric label, an error detail or the response.
import express, { Router, type NextFunction, type Request, type RequestHandler, type Response } from 'express';
import { ApiError } from '../../errors.ts';
import {
  MAX_CORRECT_ANSWER_LENGTH,
  MAX_RESPONSE_ID_LENGTH,
  type FeedbackInput,
  type FeedbackRecord,
  type FeedbackRepository,
} from '../../feedback/feedback-store.ts';

export interface FeedbackRouterDeps {
  store: Pick<FeedbackRepository, 'recordFeedback'>;
  /** The caller's API key id (set by the auth middleware), stored with the feedback. */
  keyIdOf?(req: Request, res: Response): string | undefined;
  /** After feedback is stored, e.g. to count correct/incorrect per variant in metrics. */
  onFeedback?(record: FeedbackRecord): void;
}

/** The openapi `FeedbackRecord`. */
export interface FeedbackRecordJson {
  response_id: string;
  variant: string;
  model: string;
  correct: boolean | null;
  rating: number | null;
  recorded_at: string;
}

const FEEDBACK_BODY_LIMIT = '16kb';
const JSON_TYPE = /^\s*application\/json\s*(;|$)/i;

export function createFeedbackRouter(deps: FeedbackRouterDeps): Router {
  const router = Router();
  router.post('/v1/feedback', jsonBody(FEEDBACK_BODY_LIMIT), async (req, res) => {
    const input = parseFeedbackBody(req.body);
    const keyId = deps.keyIdOf?.(req, res);
    const record = await deps.store.recordFeedback(keyId === undefined ? input : { ...input, keyId });
    deps.onFeedback?.(record);
    res.status(200).json(toFeedbackJson(record));
  });
  return router;
}

export function toFeedbackJson(record: FeedbackRecord): FeedbackRecordJson {
  return {
    response_id: record.responseId,
    variant: record.variant,
    model: record.model,
    correct: record.correct,
    rating: record.rating,
    recorded_at: record.recordedAt,
  };
}

/** Checks the body against openapi `FeedbackRequest`; every problem is listed, none quotes the body. */
export function parseFeedbackBody(body: unknown): FeedbackInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw ApiError.of('invalid_request', 'The body must be a JSON object.', { extensions: { errors: [{ path: '', message: 'must be a JSON object' }] } });
  }
  const b = body as Record<string, unknown>;
  const problems: { path: string; message: string }[] = [];
  const problem = (path: string, message: string): void => {
    problems.push({ path, message });
  };
  for (const key of Object.keys(b)) {
    if (!['response_id', 'correct', 'rating', 'correct_answer'].includes(key)) problem(`/${key}`, 'unknown property');
  }
  if (typeof b.response_id !== 'string' || b.response_id.length === 0 || b.response_id.length > MAX_RESPONSE_ID_LENGTH) {
    problem('/response_id', `must be a string of 1 to ${MAX_RESPONSE_ID_LENGTH} characters`);
  }
  if (b.correct !== undefined && typeof b.correct !== 'boolean') problem('/correct', 'must be true or false');
  if (b.rating !== undefined && !(Number.isInteger(b.rating) && (b.rating as number) >= 1 && (b.rating as number) <= 5)) {
    problem('/rating', 'must be an integer from 1 to 5');
  }
  if (b.correct === undefined && b.rating === undefined) problem('', 'give correct, rating or both');
  if (
    b.correct_answer !== undefined &&
    (typeof b.correct_answer !== 'string' || b.correct_answer.length === 0 || b.correct_answer.length > MAX_CORRECT_ANSWER_LENGTH)
  ) {
    problem('/correct_answer', `must be a string of 1 to ${MAX_CORRECT_ANSWER_LENGTH} characters`);
  }
  if (problems.length > 0) {
    const summary = problems.map((p) => (p.path === '' ? p.message : `${p.path} ${p.message}`)).join('; ');
    throw ApiError.of('invalid_request', `The feedback is not valid: ${summary}.`, { extensions: { errors: problems } });
  }
  return {
    responseId: b.response_id as string,
    ...(b.correct !== undefined ? { correct: b.correct as boolean } : {}),
    ...(b.rating !== undefined ? { rating: b.rating as number } : {}),
    ...(b.correct_answer !== undefined ? { correctAnswer: b.correct_answer as string } : {}),
  };
}

/**
 * JSON body parsing for these routers (its failures are translated at the edge: 400 bad_json / 413), so
 * the routers behave the same whether or not the app parsed the body already (express.json skips a
 * body that was parsed before).
 */
export function jsonBody(limit: string): RequestHandler {
  const parse = express.json({ limit });
  return (req: Request, res: Response, next: NextFunction): void => {
    parse(req, res, (error?: unknown) => {
      if (error) {
        next(error);
        return;
      }
      // Not parsed: a body of another type (415), or no body at all (left to validation's 400).
      const type = req.get('content-type');
      const sentBody = (req.get('content-length') ?? '0') !== '0' || req.get('transfer-encoding') !== undefined;
      if (req.body === undefined && (type !== undefined || sentBody) && !JSON_TYPE.test(type ?? '')) {
        next(ApiError.of('unsupported_media_type', 'Send the body as application/json.'));
        return;
      }
      next();
    });
  };
}
