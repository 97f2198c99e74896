import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findServedPackage, listServedPackages, modelSources, withoutServerPaths } from '../../src/registry/model-sources.ts';
import { writeFakePackage } from '../helpers/test-app.ts';

function withRoot(work: (root: string) => Promise<void>): Promise<void> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-sources-'));
  return work(root).finally(() => rmSync(root, { recursive: true, force: true }));
}

test('served packages = shipped ones plus those registered under <data dir>/models', async () => {
  await withRoot(async (root) => {
    const sources = modelSources(path.join(root, 'models'), path.join(root, 'var'));
    assert.equal(sources.registeredDir, path.join(root, 'var', 'models'));
    // Neither directory exists yet: nothing to serve, no error.
    assert.deepEqual(await listServedPackages(sources), { packages: [], clashes: [], skipped: [] });
    writeFakePackage(sources.shippedDir, 'clinvqa-sft');
    writeFakePackage(sources.registeredDir, 'clinvqa-sft-ft-0123456789ab');
    const { packages, clashes } = await listServedPackages(sources);
    assert.deepEqual(
      packages.map((p) => [p.id, p.dir]),
      [
        ['clinvqa-sft', path.join(sources.shippedDir, 'clinvqa-sft')],
        ['clinvqa-sft-ft-0123456789ab', path.join(sources.registeredDir, 'clinvqa-sft-ft-0123456789ab')],
      ],
    );
    assert.deepEqual(clashes, []);
    assert.equal((await findServedPackage(sources, 'clinvqa-sft-ft-0123456789ab'))?.dir, path.join(sources.registeredDir, 'clinvqa-sft-ft-0123456789ab'));
    assert.equal(await findServedPackage(sources, 'nope'), undefined);
  });
});

test('an id in both places is a clash: the shipped package is served, the registered one reported', async () => {
  await withRoot(async (root) => {
    const sources = modelSources(path.join(root, 'models'), path.join(root, 'var'));
    writeFakePackage(sources.shippedDir, 'clinvqa-sft');
    writeFakePackage(sources.registeredDir, 'clinvqa-sft');
    const { packages, clashes } = await listServedPackages(sources);
    assert.deepEqual(
      packages.map((p) => p.dir),
      [path.join(sources.shippedDir, 'clinvqa-sft')],
    );
    assert.deepEqual(clashes, [
      { id: 'clinvqa-sft', served: path.join(sources.shippedDir, 'clinvqa-sft'), ignored: path.join(sources.registeredDir, 'clinvqa-sft') },
    ]);
    assert.equal(
      withoutServerPaths(sources, `${sources.registeredDir}/x/manifest.json and ${sources.shippedDir}/y`),
      'registered-models/x/manifest.json and models/y',
    );
  });
});
