// Wiring only: builds the parts (metrics, audit log, model registry with one batcher per model,
// A/B table, feedback store), loads every shipped and registered model package, and assembles the
// express app in the order a request flows through it. Tests call createApp with a fake runtime
// loader; src/http/serve.ts adds the listening socket and graceful shutdown.
import express, { type Express, type Router } from 'express';
import { AuditLog, type AuditSink } from './audit/audit-log.ts';
import { ApiError } from './errors.ts';
import { createLogger, type Logger } from './audit/logger.ts';
import type { Config } from './config.ts';
import { FeedbackStore, type FeedbackRepository } from './feedback/feedback-store.ts';
import { abortWhenDraining } from './http/middleware/drain.ts';
import { auditTrail } from './http/middleware/audit-trail.ts';
import { authenticate } from './http/middleware/auth.ts';
import { errorHandler, notFound } from './http/middleware/error-handler.ts';
import { httpMetrics } from './http/middleware/http-metrics.ts';
import { resolveOperation, validateRequest } from './http/middleware/openapi-validate.ts';
import { requestId } from './http/middleware/request-id.ts';
import { rateLimit } from './http/middleware/rate-limit.ts';
import { parseBodies } from './http/middleware/upload.ts';
import { OpenApiSpec, type ErrorFormat } from './http/openapi/spec.ts';
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
import { findServedPackage, listServedPackages, modelSources, type ModelSources } from './registry/model-sources.ts';
import { ModelRegistry } from './runtime/model-registry.ts';
import { AbTableStore, type AbTableBackend, type AbTableStoreOptions } from './routing/ab-table-store.ts';
import { pickVariant } from './routing/sticky-router.ts';
import { Batcher } from './runtime/batcher.ts';
import { ExecutionLane } from './runtime/execution-lane.ts';
import type { ModelRuntime, RuntimeLoader } from './runtime/types.ts';
import { ChatService } from './serving/chat.service.ts';
import { PreprocessStage } from './serving/preprocess-stage.ts';
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
  /** Shared state elsewhere than the data dir (cluster mode: Postgres); default: SQLite and files under it. */
  stores?: SharedStores;
}

/** Where a cluster deployment keeps what every replica must agree on. */
export interface SharedStores {
  feedback: FeedbackRepository;
  openAbTable(options: Omit<AbTableStoreOptions, 'dataDir'>): Promise<AbTableBackend>;
  /** A model was loaded or unloaded through this replica (the others follow). */
  onModelChange?(change: { id: string; state: 'loaded' | 'unloaded'; packageDir: string }): Promise<void>;
  /** After the parts exist: start following the other replicas. */
  start?(parts: AppParts): Promise<void>;
  close?(): Promise<void>;
}

export interface AppParts {
  config: Config;
  registry: ModelRegistry;
  abTable: AbTableBackend;
  feedback: FeedbackRepository;
  metrics: Metrics;
  logger: Logger;
}

export interface ClinvqaApp extends AppParts {
  app: Express;
  audit: AuditSink;
  /** Readiness turns 503 and new inferences are refused; in-flight ones finish. */
  startDraining(): void;
  isDraining(): boolean;
  /** The error shape a path answers in (OpenAI's on the OpenAI-compatible routes, RFC 7807 elsewhere). */
  errorFormatOf(urlPath: string): ErrorFormat;
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
 * Loads every shipped and registered package and every Hugging Face folder shipped as downloaded; a
 * broken one, or a registered one whose id a shipped one already has, is logged and skipped while the
 * others serve.
 */
async function loadAll(registry: ModelRegistry, sources: ModelSources, config: Config, logger: Logger): Promise<void> {
  let warnedFallback = false;
  const { packages, clashes, skipped } = await listServedPackages(sources);
  for (const entry of skipped) logger.error('model folder not loaded', { folder: entry.name, error: entry.reason });
  for (const clash of clashes) {
    logger.error('two model packages have the same id; the shipped one is served', { model: clash.id, served: clash.served, ignored: clash.ignored });
  }
  for (const pkg of packages) {
    try {
      const loaded = await registry.loadPackage(pkg.dir);
      const provider = loaded.runtime.executionProvider;
      const wanted = config.executionProviders[0];
      if (!warnedFallback && provider !== undefined && provider !== wanted) {
        warnedFallback = true;
        logger.warn(`execution provider "${wanted}" is not available; running on ${provider}`, { requested: config.executionProviders, using: provider });
      }
    } catch (error) {
      logger.error('model package not loaded', { model: pkg.id, error: error instanceof Error ? error.message : String(error) });
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
  const sources = modelSources(config.modelsDir, config.dataDir);
  await loadAll(registry, sources, config, logger);
  const abOptions = {
    isKnownModel: (id: string) => registry.has(id),
    defaultModels: () => registry.list().map((m) => m.id),
    defaultStickyHeader: config.stickyHeader,
    log: (message: string, fields?: Record<string, unknown>) => logger.info(message, fields),
  };
  const abTable = deps.stores ? await deps.stores.openAbTable(abOptions) : AbTableStore.open({ dataDir: config.dataDir, ...abOptions });
  const feedback = deps.stores?.feedback ?? FeedbackStore.open(config.dataDir);
  const announce = async (change: { id: string; state: 'loaded' | 'unloaded'; packageDir: string }): Promise<void> => {
    await deps.stores?.onModelChange?.(change);
  };

  // 2. services
  const selector: VariantSelector = {
    stickyHeader: () => abTable.current.stickyHeader,
    choose: (clientId, available) => {
      const picked = pickVariant(abTable.current, clientId, (id) => available.includes(id));
      return picked ? { model: picked.variant.model, variant: picked.variant.name, tableVersion: picked.tableVersion } : undefined;
    },
  };
  const preprocessStage = new PreprocessStage(config.decode, (lane) => metrics.observeDecodeRejection(lane));
  const vqa = new VqaService({ registry, selector, recorder: feedback, metrics, limits: config.limits, logger, preprocessStage });
  const chat = new ChatService(vqa);
  const parts: AppParts = { config, registry, abTable, feedback, metrics, logger };

  // 3. the request pipeline: id → metrics/audit hooks → contract operation → auth → rate limit → body → contract check → route
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
  app.use(rateLimit(config.rateLimits));
  app.use(parseBodies({ maxImageBytes: config.limits.maxImageBytes }));
  app.use(validateRequest(spec));

  app.use(healthRouter({ registry, isDraining: () => draining }));
  app.use(metricsRouter({ metrics }));
  app.use(modelsRouter({ registry }));
  app.use(vqaRouter({ service: vqa, selector }));
  app.use(chatRouter({ service: chat, selector }));
  app.use(
    createFeedbackRouter({
      store: feedback,
      keyIdOf: (_req, res) => contextOf(res).caller?.keyId,
      onFeedback: (record) => metrics.observeFeedback(record.variant, record.correct),
    }),
  );
  // Promoting a model that has a package but is not loaded yet loads it first.
  const ensureModel = async (id: string): Promise<boolean> => {
    if (registry.has(id)) return true;
    const pkg = await findServedPackage(sources, id);
    if (!pkg) return false;
    try {
      await registry.loadPackage(pkg.dir);
    } catch (error) {
      logger.warn('model load for promotion failed', { model: id, error: error instanceof Error ? error.message : String(error) });
      throw ApiError.of('model_load_failed', `Package "${id}" could not be loaded; see the server log.`);
    }
    await announce({ id, state: 'loaded', packageDir: pkg.dir });
    await abTable.followModels(registry.list().map((m) => m.id));
    return true;
  };
  app.use(
    createAdminAbRouter({
      table: abTable,
      stats: feedback,
      ensureModel,
      audit: (event, _req, res) => {
        const ctx = contextOf(res);
        ctx.audit.action = event.action;
        ctx.audit.details = { ...event };
        if (event.model !== undefined) ctx.audit.model = event.model;
      },
    }),
  );
  app.use(
    adminModelsRouter({
      registry,
      sources,
      isRouted: (id) => abTable.current.variants.some((v) => v.model === id && v.weight > 0),
      onChange: async (change) => {
        await announce(change);
        await abTable.followModels(registry.list().map((m) => m.id));
      },
      logger,
    }),
  );
  for (const router of deps.extraRouters?.(parts) ?? []) app.use(router);
  await deps.stores?.start?.(parts);

  app.use(notFound());
  app.use(errorHandler(logger, { errorFormatOf: (urlPath) => spec.errorFormatOf(urlPath) }));

  let closed: Promise<void> | undefined;
  return {
    ...parts,
    app,
    audit,
    startDraining: () => {
      draining = true;
    },
    isDraining: () => draining,
    errorFormatOf: (urlPath) => spec.errorFormatOf(urlPath),
    close: () => {
      closed ??= (async () => {
        draining = true;
        await deps.onClose?.();
        await registry.close();
        await feedback.close();
        await audit.close();
        await deps.stores?.close?.();
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
