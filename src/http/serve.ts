// The process around the app: listen, and on SIGTERM/SIGINT drain — readiness goes 503, the
// listening socket closes, in-flight requests (and the batches they are in) finish and are
// answered with `Connection: close`, requests arriving on open keep-alive sockets are answered too
// (see graceful-close.ts) — then dispose the models and exit. Past the grace period the requests
// still unanswered get 503 + Retry-After and the remaining connections are cut.
import type { Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type AppDeps, type ClinvqaApp } from '../app.ts';
import { createLogger } from '../audit/logger.ts';
import { ApiError, toOpenAiError, toProblem } from '../errors.ts';
import { trackForGracefulClose } from './graceful-close.ts';

export interface RunningServer {
  clinvqa: ClinvqaApp;
  server: Server;
  port: number;
  /** Drains and closes; resolves when everything is closed. Idempotent. */
  shutdown(reason: string): Promise<void>;
}

export async function startServer(deps: AppDeps, options: { handleSignals?: boolean } = {}): Promise<RunningServer> {
  const logger = deps.logger ?? createLogger(deps.config.logLevel);
  const clinvqa = await createApp({ ...deps, logger });
  const { config } = deps;
  const server = clinvqa.app.listen(config.port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  // Generous socket timeouts: an answer can take a while under load; the batcher's own deadline
  // (CLINVQA_REQUEST_TIMEOUT_MS) is what bounds a request.
  server.requestTimeout = config.batching.timeoutMs + 30_000;
  server.headersTimeout = 60_000;
  const port = (server.address() as AddressInfo).port;

  const connections = trackForGracefulClose(server);
  let stopping: Promise<void> | undefined;
  const shutdown = (reason: string): Promise<void> => {
    stopping ??= (async () => {
      logger.info('shutting down: draining in-flight requests', { reason, grace_ms: config.shutdownGraceMs, in_flight: connections.inFlight });
      clinvqa.startDraining();
      await connections.close({
        graceMs: config.shutdownGraceMs,
        answerAtGraceEnd: (res) => answerShuttingDown(res, clinvqa),
        onGraceOver: (unanswered) => logger.warn('grace period over: answering the rest with 503 and closing connections', { unanswered }),
      });
      // Every response has been written by now; the batchers are idle or finishing work nobody awaits.
      await clinvqa.close();
      logger.info('shut down');
    })();
    return stopping;
  };

  if (options.handleSignals) {
    // `on`, not `once`: a repeated signal while draining must not fall back to the default action
    // (instant death) and drop the requests being drained. The grace period bounds the wait.
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.on(signal, () => {
        if (stopping) {
          logger.info('already draining', { signal });
          return;
        }
        shutdown(signal).then(
          () => process.exit(0),
          (error: unknown) => {
            logger.error('shutdown failed', { error: error instanceof Error ? error.message : String(error) });
            process.exit(1);
          },
        );
      });
    }
  }
  // Announced only once the signal handlers are in place: a supervisor that sends SIGTERM as soon
  // as it reads this line must reach the drain, not the default action.
  logger.info('listening', {
    port,
    models: clinvqa.registry.list().map((m) => m.id),
    auth: config.apiKeys.length > 0 ? `${config.apiKeys.length} keys` : 'DISABLED (CLINVQA_INSECURE_DEV=1)',
    batching: config.batching.enabled ? { max_batch: config.batching.maxBatch, max_wait_ms: config.batching.maxWaitMs } : 'off',
  });
  return { clinvqa, server, port, shutdown };
}

/** The grace period is over and this request's answer is not ready: tell the client to retry elsewhere. */
function answerShuttingDown(res: ServerResponse, clinvqa: ClinvqaApp): void {
  const error = ApiError.of('not_ready', 'The server shut down before this request was answered; retry on another instance.', {
    headers: { 'Retry-After': '1' },
  });
  const urlPath = (res.req.url ?? '').split('?')[0]!;
  const requestId = res.getHeader('X-Request-Id');
  const openAi = clinvqa.errorFormatOf(urlPath) === 'openai';
  res.writeHead(error.status, { ...error.headers, 'Content-Type': openAi ? 'application/json' : 'application/problem+json', Connection: 'close' });
  res.end(JSON.stringify(openAi ? toOpenAiError(error) : toProblem(error, { instance: urlPath, ...(typeof requestId === 'string' ? { requestId } : {}) })));
}
