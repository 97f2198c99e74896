// Admin fine-tunes, shaped like OpenAI's fine-tuning jobs so their clients feel at home. HTTP only: the upload's rules
// live in jobs/upload-validation.ts, the job lifecycle in jobs/job-queue.ts. Mounted behind the
// server's auth, which requires an admin key for every /admin path. The routes are in openapi.yaml;
// the upload's form is checked against it here, after this route has parsed the body.
//   POST /admin/fine-tunes                 multipart upload → 201 job (status validating_files)
//   GET  /admin/fine-tunes                 newest first; ?limit=&after=<job id>
//   GET  /admin/fine-tunes/:id
//   GET  /admin/fine-tunes/:id/events      JSON list (?after=<event id>&limit=), or SSE with
//                                          Accept: text/event-stream (ends when the job ends)
//   POST /admin/fine-tunes/:id/cancel
import { Router, type Request, type Response } from 'express';
import { ApiError } from '../../errors.ts';
import type { JobQueue } from '../../jobs/job-queue.ts';
import type { JobRepository, MaybePromise } from '../../jobs/job-repository.ts';
import { JOB_ID_PATTERN, TERMINAL_STATUSES, toJobJson, type FineTuneJob, type JobEvent } from '../../jobs/job-store.ts';
import { receiveFineTuneUpload, receivedParts } from '../middleware/multipart-receiver.ts';
import { RequestProblem, parseFineTuneRequest, type FineTuneRequest, type UploadLimits } from '../../jobs/upload-validation.ts';
import type { SchemaIssue } from '../openapi/schema-validator.ts';
import { contextOf } from '../request-context.ts';

export interface AdminJobsDeps {
  queue: Pick<JobQueue, 'submit' | 'emitter'> & { cancel(id: string): MaybePromise<FineTuneJob | undefined> };
  store: Pick<JobRepository, 'get' | 'list' | 'events'>;
  limits: UploadLimits;
  /** SSE keep-alive comment interval (default 15 s). */
  heartbeatMs?: number;
}

const TERMINAL_EVENT_TYPES = new Set<string>(TERMINAL_STATUSES);

/** What the audit log records of an admin action on a job: ids and settings, never data. */
function audit(res: Response, action: string, details: Record<string, unknown>): void {
  const ctx = contextOf(res);
  ctx.audit.action = action;
  ctx.audit.details = details;
}

function intParam(value: unknown, name: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (typeof value !== 'string' || !Number.isInteger(n) || n < 0 || n > max)
    throw ApiError.of('invalid_request', `${name} must be an integer from 0 to ${max}.`);
  return n;
}

export function adminJobsRouter(deps: AdminJobsDeps): Router {
  const router = Router();
  const jobOr404 = async (id: string): Promise<FineTuneJob> => {
    const job = JOB_ID_PATTERN.test(id) ? await deps.store.get(id) : undefined;
    if (!job) throw ApiError.of('job_not_found', `No fine-tune job "${id.slice(0, 64)}".`);
    return job;
  };

  router.post('/admin/fine-tunes', receiveFineTuneUpload(deps.limits), async (req, res) => {
    audit(res, 'fine_tune.create', {});
    const fields = (req.body ?? {}) as Record<string, unknown>;
    const parts = receivedParts(res);
    // The contract's form schema, now that the body is parsed (openapi.yaml marks it x-parsed-by-route).
    const operation = contextOf(res).operation;
    const contractIssues = operation?.routeParsedBodies.has('multipart/form-data')
      ? operation.checkParsedForm(
          fields,
          parts.map((p) => p.field),
        )
      : [];
    let request: FineTuneRequest;
    try {
      request = parseFineTuneRequest(fields, parts, deps.limits);
    } catch (error) {
      if (!(error instanceof RequestProblem)) throw error;
      throw withContractIssues(error, contractIssues);
    }
    if (contractIssues.length > 0) throw withContractIssues(new RequestProblem('The fine-tune request does not match the API contract.'), contractIssues);
    const job = await deps.queue.submit(request);
    audit(res, 'fine_tune.create', {
      job_id: job.id,
      base_model: job.base_model,
      files: request.upload.files.size,
      validation_fraction: request.validationFraction,
      canary_weight: request.canaryWeight,
      max_steps: request.hyperparameters.max_steps,
    });
    res.status(201).location(`/admin/fine-tunes/${job.id}`).json(toJobJson(job));
  });

  router.get('/admin/fine-tunes', async (req, res) => {
    const limit = Math.max(1, intParam(req.query.limit, 'limit', 20, 100));
    const after = typeof req.query.after === 'string' ? req.query.after : undefined;
    const page = await deps.store.list({ limit, ...(after !== undefined ? { after } : {}) });
    res.json({ object: 'list', data: page.jobs.map(toJobJson), has_more: page.hasMore });
  });

  router.get('/admin/fine-tunes/:id', async (req, res) => {
    res.json(toJobJson(await jobOr404(req.params.id)));
  });

  router.post('/admin/fine-tunes/:id/cancel', async (req, res) => {
    const id = req.params.id;
    await jobOr404(id);
    audit(res, 'fine_tune.cancel', { job_id: id });
    const job = await deps.queue.cancel(id);
    res.json(toJobJson(job ?? (await jobOr404(id))));
  });

  router.get('/admin/fine-tunes/:id/events', async (req, res) => {
    const job = await jobOr404(req.params.id);
    if (req.accepts(['application/json', 'text/event-stream']) === 'text/event-stream' && (req.get('accept') ?? '').includes('text/event-stream')) {
      await streamEvents(req, res, job, deps);
      return;
    }
    const limit = Math.max(1, intParam(req.query.limit, 'limit', 1000, 10_000));
    const afterId = intParam(req.query.after, 'after', 0, Number.MAX_SAFE_INTEGER);
    const events = await deps.store.events(job.id, { afterId, limit: limit + 1 });
    res.json({ object: 'list', data: events.slice(0, limit).map(toEventJson), has_more: events.length > limit });
  });

  return router;
}

/**
 * One answer listing every problem: the route's own (more specific wording) first, then the
 * contract's at paths the route did not already report. A size problem (413) stays one.
 */
function withContractIssues(problem: RequestProblem, issues: readonly SchemaIssue[]): RequestProblem {
  if (problem.status === 413 || issues.length === 0) return problem;
  const seen = new Set(problem.problems.map((p) => p.path));
  const extra = issues.filter((i) => !seen.has(i.path)).map((i) => ({ path: i.path, message: i.message }));
  if (extra.length === 0) return problem;
  const all = [...problem.problems, ...extra];
  const listed = all
    .slice(0, 5)
    .map((p) => `${p.path} ${p.message}`)
    .join('; ');
  return new RequestProblem(`The fine-tune request is malformed: ${listed}${all.length > 5 ? `; and ${all.length - 5} more` : ''}.`, all);
}

function toEventJson(e: JobEvent): Record<string, unknown> {
  return { object: 'fine_tuning.job.event', id: e.id, created_at: e.created_at, level: e.level, type: e.type, message: e.message, data: e.data };
}

/**
 * Server-sent events: the backlog after Last-Event-ID (or ?after=), then live events as the queue
 * records them; the stream ends after the job's final status event, or when the server shuts down.
 */
async function streamEvents(req: Request, res: Response, job: FineTuneJob, deps: AdminJobsDeps): Promise<void> {
  const header = req.get('last-event-id') ?? (typeof req.query.after === 'string' ? req.query.after : undefined);
  let lastSent = header !== undefined && /^\d+$/.test(header) ? Number(header) : 0;
  res.status(200);
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
  res.setHeader('Cache-Control', 'no-cache, no-transform');
  res.setHeader('X-Accel-Buffering', 'no');
  res.flushHeaders();

  let ended = false;
  const end = () => {
    if (ended) return;
    ended = true;
    deps.queue.emitter.off('event', onEvent);
    deps.queue.emitter.off('close', end);
    clearInterval(heartbeat);
    res.end();
  };
  const write = (e: JobEvent) => {
    if (ended || e.id <= lastSent) return;
    lastSent = e.id;
    res.write(`id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(toEventJson(e))}\n\n`);
    if (TERMINAL_EVENT_TYPES.has(e.type)) end();
  };
  const buffered: JobEvent[] = [];
  let replaying = true;
  function onEvent(e: JobEvent): void {
    if (e.job_id !== job.id) return;
    if (replaying) buffered.push(e);
    else write(e);
  }
  // Subscribe before reading the backlog so nothing recorded in between is missed.
  deps.queue.emitter.on('event', onEvent);
  deps.queue.emitter.on('close', end);
  const heartbeat = setInterval(() => {
    if (!ended) res.write(': keep-alive\n\n');
  }, deps.heartbeatMs ?? 15_000);
  req.on('close', end);

  for (const e of await deps.store.events(job.id, { afterId: lastSent })) write(e);
  replaying = false;
  for (const e of buffered) write(e);
  // A job that had already ended before this stream (and whose final event was already seen) ends it now.
  const current = await deps.store.get(job.id);
  if (current && TERMINAL_STATUSES.includes(current.status)) end();
}
