// Wiring only: builds the parts (metrics, audit log, model registry with one batcher per model,
// A/B table, feedback store), loads every package in the models directory, and assembles the
// express app in the order a request flows through it. Tests call createApp with a fake runtime
// loader; src/http/serve.ts adds the listening socket and graceful shutdown.
import path from 'node:path';
import express, { type Express, type Router } from 'express';
import { AuditLog, type AuditSink } from './audit/audit-log.ts';
import { ApiError } from './errors.ts';
import { createLogger, type Logger } from './audit/logger.ts';
import type { Config } from './config.ts';
import { FeedbackStore } from './feedback/feedback-store.ts';
import { abortWhenDraining } from './http/middleware/drain.ts';
import { auditTrail } from './http/middleware/audit-trail.ts';
import { authenticate } from './http/middleware/auth.ts';
import { errorHandler, notFound } from './http/middleware/error-handler.ts';
import { httpMetrics } from './http/middleware/http-metrics.ts';
import { resolveOperation, validateRequest } from './http/middleware/openapi-validate.ts';
import { requestId } from './http/middleware/request-id.ts';
import { parseBodies } from './http/middleware/upload.ts';
import { OpenApiSpec } from './http/openapi/spec.ts';
import { contextOf } from './http/request-context.ts';
import { createAdminAbRouter } from './http/routes/admin-ab.route.ts';
import { adminModelsRouter } from './http/routes/admin-models.route.ts';
import { chatRouter } from './http/routes/chat.route.ts';
import { adminJobsRouter } from './http/routes/admin-jobs.route.ts';
import { createFeedbackRouter } from './http/routes/feedback.route.ts';
import { healthRouter } from './http/routes/health.route.ts';
import { metricsRouter } from './http/routes/metrics.route.ts';
import { modelsRouter } from './http/routes/models.route.ts';
import { vqaRouter } from './http/routes/vqa.route.ts';
import type { FineTunes } from './jobs/fine-tunes.ts';
import { Metrics } from './metrics/metrics.ts';
import { listModelFolders } from './registry/model-folders.ts';
import { ModelRegistry } from './runtime/model-registry.ts';
import { AbTableStore } from './routing/ab-table-store.ts';
import { pickVariant } from './routing/sticky-router.ts';
import { Batcher } from './runtime/batcher.ts';
import { ExecutionLane } from './runtime/execution-lane.ts';
import type { ModelRuntime, RuntimeLoader } from './runtime/types.ts';
import { ChatService } from './serving/chat.service.ts';
import type { VariantSelector } from './serving/variant-selection.ts';
import { VqaService } from './serving/vqa.service.ts';

export interface AppDeps {
  config: Config;
  loader: RuntimeLoader;
  logger?: Logger;
  /** Default: the JSON-lines audit log under the data dir. */
  audit?: AuditSink;
  /** Default: a fresh registry with process metrics. */
  metrics?: Metrics;
  spec?: OpenApiSpec;
  /** Routers mounted after the built-in ones, behind the same auth and validation (e.g. fine-tunes). */
  extraRouters?(parts: AppParts): Router[];
  /** Runs first on close, before the models are disposed (e.g. stop a fine-tune worker at a checkpoint). */
  onClose?(): Promise<void>;
}

export interface AppParts {
  config: Config;
  registry: ModelRegistry;
  abTable: AbTableStore;
  feedback: FeedbackStore;
  metrics: Metrics;
  logger: Logger;
}

export interface ClinvqaApp extends AppParts {
  app: Express;
  audit: AuditSink;
  /** Readiness turns 503 and new inferences are refused; in-flight ones finish. */
  startDraining(): void;
  isDraining(): boolean;
  /** Waits for in-flight batches, disposes every runtime, closes the stores. */
  close(): Promise<void>;
}

function batcherFor(config: Config, logger: Logger) {
  // Every model's batches take turns: ORT runs them on this one event loop anyway.
  const lane = new ExecutionLane();
  return (runtime: ModelRuntime): Batcher =>
    new Batcher(
      (reqs) => runtime.generateBatch(reqs),
      { ...config.batching, maxBatch: Math.max(1, Math.min(config.batching.maxBatch, runtime.maxBatch)), lane },
      {
        onBatch: ({ size, durationMs, failed }) => {
          if (failed) logger.error('inference batch failed', { model: runtime.id, size, duration_ms: Math.round(durationMs) });
        },
      },
    );
}

/**
 * Loads every model in the models directory, our packages and Hugging Face folders alike; a broken
 * one is logged with the reason and skipped, and the others serve.
 */
async function loadAll(registry: ModelRegistry, config: Config, logger: Logger): Promise<void> {
  let warnedFallback = false;
  const { folders, skipped } = await listModelFolders(config.modelsDir);
  for (const entry of skipped) logger.error('model folder not loaded', { folder: entry.name, error: entry.reason });
  for (const pkg of folders) {
    try {
      const loaded = await registry.loadPackage(pkg.dir);
      const provider = loaded.runtime.executionProvider;
      const wanted = config.executionProviders[0];
      if (!warnedFallback && provider !== undefined && provider !== wanted) {
        warnedFallback = true;
        logger.warn(`execution provider "${wanted}" is not available; running on ${provider}`, { requested: config.executionProviders, using: provider });
      }
    } catch (error) {
      const what = pkg.kind === 'package' ? 'model package not loaded' : 'model folder not loaded';
      logger.error(what, { model: pkg.id, error: error instanceof Error ? error.message : String(error) });
    }
  }
}

export async function createApp(deps: AppDeps): Promise<ClinvqaApp> {
  const { config } = deps;
  const logger = deps.logger ?? createLogger(config.logLevel);
  const spec = deps.spec ?? OpenApiSpec.load();
  const audit = deps.audit ?? new AuditLog(config.dataDir, (error) => logger.error('audit log write failed', { error: error.message }));
  let registry!: ModelRegistry;
  const metrics = deps.metrics ?? new Metrics({ queueDepth: () => registry.list().map((m) => ({ model: m.id, depth: m.batcher.queued })) });
  registry = new ModelRegistry({
    loader: deps.loader,
    executionProviders: config.executionProviders,
    intraOpThreads: config.intraOpThreads,
    createBatcher: batcherFor(config, logger),
    log: (message, fields) => logger.info(message, fields),
  });

  // 1. models, then the A/B table over them (a default table follows what loaded)
  await loadAll(registry, config, logger);
  const abTable = AbTableStore.open({
    dataDir: config.dataDir,
    isKnownModel: (id) => registry.has(id),
    defaultModels: () => registry.list().map((m) => m.id),
    defaultStickyHeader: config.stickyHeader,
    log: (message, fields) => logger.info(message, fields),
  });
  const feedback = FeedbackStore.open(config.dataDir);

  // 2. services
  const selector: VariantSelector = {
    stickyHeader: () => abTable.current.stickyHeader,
    choose: (clientId, available) => {
      const picked = pickVariant(abTable.current, clientId, (id) => available.includes(id));
      return picked ? { model: picked.variant.model, variant: picked.variant.name, tableVersion: picked.tableVersion } : undefined;
    },
  };
  const vqa = new VqaService({ registry, selector, recorder: feedback, metrics, limits: config.limits, logger });
  const chat = new ChatService(vqa);
  const parts: AppParts = { config, registry, abTable, feedback, metrics, logger };

  // 3. the request pipeline: id → metrics/audit hooks → contract operation → auth → body → contract check → route
  let draining = false;
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(requestId());
  app.use(httpMetrics(metrics));
  app.use(auditTrail(audit));
  app.use(resolveOperation(spec));
  app.use(abortWhenDraining(() => draining));
  app.use(authenticate({ apiKeys: config.apiKeys, insecureDev: config.insecureDev }));
  app.use(parseBodies({ maxImageBytes: config.limits.maxImageBytes }));
  app.use(validateRequest(spec));

  app.use(healthRouter({ registry, isDraining: () => draining }));
  app.use(metricsRouter({ metrics }));
  app.use(modelsRouter({ registry }));
  app.use(vqaRouter({ service: vqa, selector }));
  app.use(chatRouter({ service: chat, selector }));
  app.use(createFeedbackRouter({
    store: feedback,
    keyIdOf: (_req, res) => contextOf(res).caller?.keyId,
    onFeedback: (record) => metrics.observeFeedback(record.variant, record.correct),
  }));
  // Promoting a model that has a package but is not loaded yet loads it first.
  const ensureModel = async (id: string): Promise<boolean> => {
    if (registry.has(id)) return true;
    if (!(await listModelFolders(config.modelsDir)).folders.some((p) => p.id === id)) return false;
    try {
      await registry.loadPackage(path.join(config.modelsDir, id));
    } catch (error) {
      logger.warn('model load for promotion failed', { model: id, error: error instanceof Error ? error.message : String(error) });
      throw ApiError.of('model_load_failed', `Package "${id}" could not be loaded; see the server log.`);
    }
    abTable.followModels(registry.list().map((m) => m.id));
    return true;
  };
  app.use(createAdminAbRouter({
    table: abTable,
    stats: feedback,
    ensureModel,
    audit: (event, _req, res) => {
      const ctx = contextOf(res);
      ctx.audit.action = event.action;
      ctx.audit.details = { ...event };
      if (event.model !== undefined) ctx.audit.model = event.model;
    },
  }));
  app.use(adminModelsRouter({
    registry,
    modelsDir: config.modelsDir,
    isRouted: (id) => abTable.current.variants.some((v) => v.model === id && v.weight > 0),
    onChange: () => abTable.followModels(registry.list().map((m) => m.id)),
    logger,
  }));
  for (const router of deps.extraRouters?.(parts) ?? []) app.use(router);

  app.use(notFound());
  app.use(errorHandler(logger));

  let closed: Promise<void> | undefined;
  return {
    ...parts,
    app,
    audit,
    startDraining: () => {
      draining = true;
    },
    isDraining: () => draining,
    close: () => {
      closed ??= (async () => {
        draining = true;
        await deps.onClose?.();
        await registry.close();
        feedback.close();
        await audit.close();
      })();
      return closed;
    },
  };
}

/** For `extraRouters`: starts fine-tuning with this app's registry and A/B table, and its admin router. */
export function fineTuneRouters(fineTunes: FineTunes, parts: AppParts): Router[] {
  const { queue, store, limits } = fineTunes.start({
    logger: parts.logger,
    imageLimits: parts.config.limits,
    registerModel: async (dir) => {
      await parts.registry.loadPackage(dir);
    },
    setCanary: (id, share) => parts.abTable.setCanary(id, share),
  });
  return [adminJobsRouter({ queue, store, limits })];
}
