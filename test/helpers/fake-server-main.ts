// Child-process entry for the shutdown test: the real server (config from env, startServer with
// signal handling) around fake runtimes that take FAKE_DELAY_MS per batch.
import { startServer } from '../../src/http/serve.ts';
import { loadConfig } from '../../src/config.ts';
import { fakeLoader } from './fake-runtime.ts';

const config = loadConfig();
await startServer({ config, loader: fakeLoader({ delayMs: Number(process.env.FAKE_DELAY_MS ?? 0) }) }, { handleSignals: true });
