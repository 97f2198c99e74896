// `npm run worker`: a trainer worker of a cluster deployment. Needs CLINVQA_DATABASE_URL and the
// same CLINVQA_DATA_DIR (shared volume) as the servers; takes fine-tune jobs until SIGTERM, then
// stops its training at a checkpoint and hands the job back to the queue for another worker.
import { createLogger } from './audit/logger.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { startClusterWorker } from './jobs/cluster-worker-process.ts';

let config: Config;
try {
  config = loadConfig();
  if (config.databaseUrl === null) throw new ConfigError('a trainer worker needs CLINVQA_DATABASE_URL (the database the servers use)');
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`clinvqa worker: refusing to start: ${error.message}\n`);
  process.exit(78);
}

const logger = createLogger(config.logLevel);
const started = await startClusterWorker(config, logger);
logger.info('trainer worker ready', { instance: config.instanceId, lease_s: config.jobLeaseS });

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    logger.info('trainer worker stopping', { signal });
    void started.close().then(() => process.exit(0));
  });
}
