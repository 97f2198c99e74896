import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, mkdir, mkdtemp, readFile, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';

import { encodeSafetensors } from '../../src/engine/export/safetensors.ts';
import { ManifestError } from '../../src/registry/manifest.ts';
import {
  ModelPackageError,
  listModelPackages,
  packageDirFor,
  sweepIncompletePackages,
  verifyModelPackage,
  writeModelPackage,
  type ModelPackageInput,
} from '../../src/registry/model-package.ts';

const MODULE_URL = new URL('../../src/registry/model-package.ts', import.meta.url).href;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

function input(id = 'clinvqa-sft'): ModelPackageInput {
  return {
    id,
    preset: 'tiny',
    version: '0.1.0',
    parent: null,
    created_at: '2025-03-01T08:30:00.000Z',
    method: 'sft',
    training: { epochs: 2, learning_rate: 3e-4, trace: 'grounded' },
    seed: 42,
    dataset: { name: 'vqa-rad', sha256: sha256(Buffer.from('dataset')) },
    eval: { accuracy: 0.5, open: { token_f1: 0.25 } },
    config: { preset: 'tiny', hidden: 16 },
    files: {
      'tokenizer.json': Buffer.from('{"model":{"type":"BPE"}}'),
      'model.safetensors': encodeSafetensors({ w: { dtype: 'F32', shape: [2], data: Float32Array.of(1, 2) } }, { format: 'pt' }),
      'onnx/vision_encoder.onnx': Buffer.from('vision graph bytes'),
      'onnx/decoder.onnx': Buffer.from('decoder graph bytes'),
    },
  };
}

/** Asserts a ModelPackageError about `file` whose message matches `pattern`. */
async function assertPackageError(promise: Promise<unknown>, file: string | undefined, pattern: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ModelPackageError, `expected ModelPackageError, got ${String(error)}`);
    assert.equal(error.file, file);
    assert.match(error.message, pattern);
    return true;
  });
}

let root: string;
let models: string;
beforeEach(async () => {
  root ??= await mkdtemp(join(tmpdir(), 'model-package-test-'));
  models = await mkdtemp(join(root, 'models-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('writeModelPackage', () => {
  it("writes every file and a manifest holding each file's sha256 and every manifest field", async () => {
    const dir = join(models, 'clinvqa-sft');
    const given = input();
    const manifest = await writeModelPackage(dir, given);

    const onDisk = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    assert.deepEqual(onDisk, manifest);
    assert.deepEqual(Object.keys(onDisk).sort(), [
      'created_at',
      'dataset',
      'eval',
      'family',
      'files',
      'id',
      'method',
      'parent',
      'preset',
      'seed',
      'training',
      'version',
    ]);
    assert.equal(onDisk.family, 'clinvqa-vlm');
    assert.equal(onDisk.method, 'sft');
    assert.deepEqual(onDisk.training, given.training);
    assert.deepEqual(onDisk.dataset, given.dataset);
    assert.deepEqual(onDisk.eval, given.eval);
    assert.equal(onDisk.seed, 42);

    // Hashes computed here, independently, from the bytes on disk; config.json is generated.
    const expected: Record<string, string> = {};
    for (const path of ['config.json', ...Object.keys(given.files)]) expected[path] = sha256(await readFile(join(dir, path)));
    assert.deepEqual(onDisk.files, expected);
    assert.deepEqual(Object.keys(onDisk.files), Object.keys(expected).sort());
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')), given.config);
    assert.deepEqual(await readFile(join(dir, 'onnx/decoder.onnx')), given.files['onnx/decoder.onnx']);
    assert.deepEqual(await verifyModelPackage(dir), manifest);
    // Nothing but the package is left in the models directory.
    assert.deepEqual(await readdir(models), ['clinvqa-sft']);
  });

  it('fills created_at with the current time when not given', async () => {
    const { created_at: _, ...rest } = input();
    const before = Date.now();
    const manifest = await writeModelPackage(join(models, 'clinvqa-sft'), rest);
    assert.ok(Date.parse(manifest.created_at) >= before - 1000 && Date.parse(manifest.created_at) <= Date.now());
  });

  it('is invisible under its final name until the rename, and a failure before it leaves nothing', async () => {
    const dir = join(models, 'clinvqa-sft');
    let seen: string | undefined;
    const failure = new Error('disk full (simulated)');
    await assert.rejects(
      writeModelPackage(dir, input(), {
        beforeRename: async (tmp) => {
          seen = tmp;
          // Fully written and synced, yet no package exists under the final name.
          assert.equal(await exists(dir), false);
          assert.deepEqual(await listModelPackages(models), []);
          assert.deepEqual((await readdir(tmp)).sort(), ['config.json', 'manifest.json', 'model.safetensors', 'onnx', 'tokenizer.json']);
          throw failure;
        },
      }),
      failure,
    );
    assert.ok(seen?.startsWith(join(models, '.clinvqa-sft.tmp-')));
    assert.equal(await exists(dir), false);
    assert.deepEqual(await readdir(models), [], 'the temporary directory is removed');
  });

  it('leaves no package when the process is killed just before the rename; the leftovers are swept', async () => {
    const dir = join(models, 'clinvqa-sft');
    const script = `
      const { writeModelPackage } = await import(${JSON.stringify(MODULE_URL)});
      const input = JSON.parse(process.env.PACKAGE_INPUT);
      for (const [k, v] of Object.entries(input.files)) input.files[k] = Buffer.from(v, 'base64');
      await writeModelPackage(process.env.PACKAGE_DIR, input, { beforeRename: () => process.kill(process.pid, 'SIGKILL') });
      console.log('renamed');
    `;
    const given = input();
    const serialisable = {
      ...given,
      files: Object.fromEntries(Object.entries(given.files).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    };
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      env: { ...process.env, PACKAGE_DIR: dir, PACKAGE_INPUT: JSON.stringify(serialisable) },
      encoding: 'utf8',
    });
    assert.equal(child.signal, 'SIGKILL', child.stderr);
    assert.equal(child.stdout, '');
    assert.equal(await exists(dir), false);
    const left = await readdir(models);
    assert.equal(left.length, 1);
    assert.match(left[0]!, new RegExp(`^\\.clinvqa-sft\\.tmp-${child.pid}-[0-9a-f]+$`));
    assert.deepEqual(await listModelPackages(models), []);

    assert.deepEqual(await sweepIncompletePackages(models), left);
    assert.deepEqual(await readdir(models), []);
    // The same id can then be written normally.
    await writeModelPackage(dir, input());
    await verifyModelPackage(dir);
  });

  it('does not sweep a write still in progress in a live process', async () => {
    const dir = join(models, 'clinvqa-sft');
    await writeModelPackage(dir, input(), {
      beforeRename: async () => {
        assert.deepEqual(await sweepIncompletePackages(models), []);
      },
    });
    await verifyModelPackage(dir);
  });

  it('refuses to replace an existing package, and bad input before writing anything', async () => {
    const dir = join(models, 'clinvqa-sft');
    await writeModelPackage(dir, input());
    await assertPackageError(writeModelPackage(dir, input()), undefined, /already exists .* packages are immutable/);

    const other = join(models, 'other');
    await assertPackageError(writeModelPackage(other, input()), undefined, /must be named after the package id "clinvqa-sft"/);
    await assert.rejects(writeModelPackage(join(models, 'BAD'), input('BAD')), ManifestError);
    const noDecoder = input('x1');
    delete (noDecoder.files as Record<string, Uint8Array>)['onnx/decoder.onnx'];
    await assertPackageError(writeModelPackage(join(models, 'x1'), noDecoder), 'onnx/decoder.onnx', /missing required file/);
    const traversal = input('x2');
    traversal.files['../escape.bin'] = Buffer.from('x');
    await assertPackageError(writeModelPackage(join(models, 'x2'), traversal), '../escape.bin', /not a valid package file path/);
    const manifestFile = input('x3');
    manifestFile.files['manifest.json'] = Buffer.from('{}');
    await assertPackageError(writeModelPackage(join(models, 'x3'), manifestFile), 'manifest.json', /generated by writeModelPackage/);
    assert.deepEqual(await readdir(models), ['clinvqa-sft']);
  });
});

describe('verifyModelPackage', () => {
  let dir: string;
  beforeEach(async () => {
    dir = join(models, 'clinvqa-sft');
    await writeModelPackage(dir, input());
  });

  it('refuses an altered file, naming it with the actual and expected hash prefixes', async () => {
    const path = join(dir, 'model.safetensors');
    const original = await readFile(path);
    const altered = Buffer.from(original);
    altered[altered.length - 1]! ^= 1; // one bit of one weight
    await writeFile(path, altered);
    const actual = sha256(altered).slice(0, 12);
    const expected = sha256(original).slice(0, 12);
    await assertPackageError(
      verifyModelPackage(dir),
      'model.safetensors',
      new RegExp(`file "model\\.safetensors" does not match the manifest: sha256 ${actual}…, expected ${expected}…`),
    );
  });

  it('refuses a missing file', async () => {
    await unlink(join(dir, 'onnx/vision_encoder.onnx'));
    await assertPackageError(verifyModelPackage(dir), 'onnx/vision_encoder.onnx', /"onnx\/vision_encoder\.onnx" is listed in the manifest but missing/);
    await rm(join(dir, 'onnx'), { recursive: true });
    await assertPackageError(verifyModelPackage(dir), 'onnx/decoder.onnx', /listed in the manifest but missing/);
  });

  it('refuses an extra file the manifest does not list, at any depth', async () => {
    await writeFile(join(dir, 'onnx/decoder.onnx.data'), 'weights nobody hashed');
    await assertPackageError(verifyModelPackage(dir), 'onnx/decoder.onnx.data', /file "onnx\/decoder\.onnx\.data" is not listed in the manifest/);
    await unlink(join(dir, 'onnx/decoder.onnx.data'));
    await mkdir(join(dir, 'extra'));
    await writeFile(join(dir, 'extra/.notes'), 'x');
    await assertPackageError(verifyModelPackage(dir), 'extra/.notes', /not listed in the manifest/);
    await rm(join(dir, 'extra'), { recursive: true });
    await verifyModelPackage(dir); // an empty directory would hold nothing, so it is the files that count
  });

  it('refuses a listed file replaced by a symbolic link, even to identical bytes', async () => {
    const outside = join(root, 'tokenizer-copy.json');
    await writeFile(outside, await readFile(join(dir, 'tokenizer.json')));
    await unlink(join(dir, 'tokenizer.json'));
    await symlink(outside, join(dir, 'tokenizer.json'));
    await assertPackageError(verifyModelPackage(dir), 'tokenizer.json', /"tokenizer\.json" must be a regular file, found a symbolic link/);
  });

  it('refuses a manifest listing a path with "..", or an invalid id, or a directory of another name', async () => {
    const manifestPath = join(dir, 'manifest.json');
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8'));
    await writeFile(
      manifestPath,
      JSON.stringify({ ...manifest, files: { ...manifest.files, '../clinvqa-other/model.safetensors': manifest.files['model.safetensors'] } }),
    );
    await assert.rejects(
      verifyModelPackage(dir),
      (e: Error) =>
        e instanceof ManifestError &&
        e.message.includes(manifestPath) &&
        /"\.\.\/clinvqa-other\/model\.safetensors" is not a valid package file path/.test(e.message),
    );

    await writeFile(manifestPath, JSON.stringify({ ...manifest, id: 'Clinvqa SFT' }));
    await assert.rejects(verifyModelPackage(dir), (e: Error) => e instanceof ManifestError && /id must match .* got "Clinvqa SFT"/.test(e.message));

    await writeFile(manifestPath, JSON.stringify({ ...manifest, id: 'clinvqa-grpo' }));
    await assertPackageError(verifyModelPackage(dir), undefined, /directory name "clinvqa-sft" does not match manifest id "clinvqa-grpo"/);
  });

  it('refuses a directory without a manifest', async () => {
    await unlink(join(dir, 'manifest.json'));
    await assert.rejects(verifyModelPackage(dir), (e: Error) => e instanceof ManifestError && /cannot read manifest \(ENOENT\)/.test(e.message));
  });
});

describe('listModelPackages', () => {
  it('lists package directories sorted by id and skips everything else', async () => {
    await writeModelPackage(join(models, 'zeta'), input('zeta'));
    await writeModelPackage(join(models, 'alpha'), input('alpha'));
    await mkdir(join(models, 'no-manifest'));
    await mkdir(join(models, 'Not_A_Package'));
    await writeFile(join(models, 'Not_A_Package/manifest.json'), '{}');
    await mkdir(join(models, '.alpha2.tmp-1-abcdef'));
    await writeFile(join(models, '.alpha2.tmp-1-abcdef/manifest.json'), '{}');
    await writeFile(join(models, 'plain-file'), 'x');
    await writeFile(join(models, 'README.md'), 'x');
    assert.deepEqual(await listModelPackages(models), [
      { id: 'alpha', dir: join(models, 'alpha') },
      { id: 'zeta', dir: join(models, 'zeta') },
    ]);
  });

  it('treats a missing models directory as empty', async () => {
    assert.deepEqual(await listModelPackages(join(models, 'absent')), []);
    assert.deepEqual(await sweepIncompletePackages(join(models, 'absent')), []);
  });
});

it('packageDirFor: a directory holding a manifest is taken as is, anything else is an id under the models dir', () => {
  assert.equal(packageDirFor('models/clinvqa-sft'), 'models/clinvqa-sft');
  assert.equal(packageDirFor('clinvqa-sft'), join('models', 'clinvqa-sft'));
  assert.equal(packageDirFor('clinvqa-grpo', '/srv/models'), join('/srv/models', 'clinvqa-grpo'));
});
