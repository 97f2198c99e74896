// Boot: read the configuration, serve every package in the models directory on the configured
// execution providers, and drain on SIGTERM. A configuration problem (e.g. no API keys without
// CLINVQA_INSECURE_DEV=1) stops the process with the reason, before anything listens.
import { createLogger } from './audit/logger.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { fineTuneRouters } from './app.ts';
import { startServer } from './http/serve.ts';
import { createClusterServer } from './cluster-server.ts';
import { startClusterWorker } from './jobs/cluster-worker-process.ts';
import { createFineTunes } from './jobs/fine-tunes.ts';
import { createModelLoader } from './runtime/architectures.ts';

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`clinvqa: refusing to start: ${error.message}\n`);
  process.exit(78); // EX_CONFIG
}

const logger = createLogger(config.logLevel);
if (config.insecureDev && config.apiKeys.length === 0) {
  logger.warn('CLINVQA_INSECURE_DEV=1 and no API keys: authentication is OFF; every caller is an admin. Never do this on a shared network.');
}
try {
  const loader = createModelLoader({ dataDir: config.dataDir, log: (message, fields) => logger.info(message, fields) });
  if (config.databaseUrl === null) {
    // Embedded: fine-tune job store and worker under the data dir, routes behind admin auth.
    const fineTunes = createFineTunes({ dataDir: config.dataDir, modelsDir: config.modelsDir });
    await startServer(
      { config, loader, logger, extraRouters: (parts) => fineTuneRouters(fineTunes, parts), onClose: () => fineTunes.close() },
      { handleSignals: true },
    );
  } else {
    // Cluster: shared state in Postgres; training in `npm run worker` processes (or here, if asked).
    const cluster = await createClusterServer(config, logger);
    const worker = config.embeddedWorker ? await startClusterWorker(config, logger) : undefined;
    await startServer(
      {
        config,
        loader,
        logger,
        stores: cluster.stores,
        audit: cluster.audit,
        extraRouters: (parts) => cluster.extraRouters(parts),
        onClose: async () => worker?.close(),
      },
      { handleSignals: true },
    );
  }
} catch (error) {
  logger.error('failed to start', { error: error instanceof Error ? error.message : String(error) });
  process.exit(1);
}
