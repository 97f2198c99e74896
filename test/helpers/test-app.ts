// Builds a real app (real middleware, registry, A/B table, feedback store, audit log in a temp data
// dir) around fake runtimes, for HTTP tests.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createApp, type ClinvqaApp } from '../../src/app.ts';
import { silentLogger, type Logger } from '../../src/audit/logger.ts';
import { loadConfig } from '../../src/config.ts';
import { Metrics } from '../../src/metrics/metrics.ts';
import { fakeLoader, type FakeBehaviour, type FakeRuntime } from './fake-runtime.ts';

export const CLINICIAN_KEY = 'clinician-key-0123456789';
export const ADMIN_KEY = 'admin-key-0123456789abcdef';
export const AUTH = { Authorization: `Bearer ${CLINICIAN_KEY}` };
export const ADMIN_AUTH = { Authorization: `Bearer ${ADMIN_KEY}` };

export function writeFakePackage(modelsDir: string, id: string): void {
  const dir = path.join(modelsDir, id);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    path.join(dir, 'manifest.json'),
    JSON.stringify({ id, family: 'clinvqa-vlm', method: 'sft', created_at: '2025-01-31T12:00:00.000Z', version: '1.0.0' }),
  );
}

export interface TestApp {
  clinvqa: ClinvqaApp;
  runtimes: FakeRuntime[];
  root: string;
  dataDir: string;
  modelsDir: string;
  cleanup(): Promise<void>;
}

export interface TestAppOptions {
  /** Shipped packages (in the models dir). */
  models?: string[];
  /** Packages registered at run time (under `<data dir>/models`), present at start. */
  registered?: string[];
  env?: Record<string, string>;
  behaviour?: FakeBehaviour;
  logger?: Logger;
}

export async function makeTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-http-'));
  const dataDir = path.join(root, 'var');
  const modelsDir = path.join(root, 'models');
  for (const id of options.models ?? ['clinvqa-sft']) writeFakePackage(modelsDir, id);
  for (const id of options.registered ?? []) writeFakePackage(path.join(dataDir, 'models'), id);
  const config = loadConfig({
    CLINVQA_API_KEYS: `clinician:${CLINICIAN_KEY},admin:${ADMIN_KEY}`,
    CLINVQA_DATA_DIR: dataDir,
    CLINVQA_MODELS_DIR: modelsDir,
    CLINVQA_BATCH_MAX_WAIT_MS: '2',
    ...options.env,
  });
  const loader = fakeLoader(options.behaviour);
  const clinvqa = await createApp({ config, loader, logger: options.logger ?? silentLogger, metrics: undefined });
  return {
    clinvqa,
    runtimes: loader.built,
    root,
    dataDir,
    modelsDir,
    cleanup: async () => {
      await clinvqa.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export { Metrics };
