// Child-process entry for the real-process fine-tune tests: the real server (config from env, real
// ONNX runtimes, signal handling) with the fine-tune routes mounted, as main.ts would mount them.
// FT_MAX_CRASHES and FT_STANDARD_VALIDATION (comma-separated JSONL paths) tune the queue.
import { createLogger } from '../../../src/audit/logger.ts';
import { loadConfig } from '../../../src/config.ts';
import { fineTuneRouters } from '../../../src/app.ts';
import { startServer } from '../../../src/http/serve.ts';
import { createFineTunes } from '../../../src/jobs/fine-tunes.ts';
import { loadModelRuntime } from '../../../src/runtime/model-runtime.ts';

const config = loadConfig();
const fineTunes = createFineTunes({
  dataDir: config.dataDir,
  modelsDir: config.modelsDir,
  standardValidation: (process.env.FT_STANDARD_VALIDATION ?? '').split(',').filter((p) => p !== ''),
  maxCrashes: Number(process.env.FT_MAX_CRASHES ?? 3),
  retryDelayMs: 200,
  workerThreads: 1,
});
const server = await startServer(
  { config, loader: loadModelRuntime, logger: createLogger(config.logLevel), extraRouters: (parts) => fineTuneRouters(fineTunes, parts) },
  { handleSignals: false },
);
await fineTunes.started;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    void fineTunes
      .close()
      .then(() => server.shutdown(signal))
      .then(() => process.exit(0));
  });
}
process.stdout.write(`FT_SERVER_PORT=${server.port}\n`);
