// Rebuilds a package's serving graphs (onnx/*.onnx) from its own model.safetensors and config.json
// after an engine change, leaving weights, tokenizer and manifest fields as they are; the manifest's
// file hashes are recomputed. The package is rewritten next to itself and swapped in by rename.
//   node --import tsx scripts/reexport-onnx.ts models/clinvqa-sft [models/clinvqa-grpo ...]
import { readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { verifyModelPackage, writeModelPackage } from '../src/registry/model-package.ts';
import { exportServingOnnx } from '../src/engine/export/onnx-export.ts';
import { initialModel } from '../src/training/model-init.ts';

for (const dir of process.argv.slice(2)) {
  const manifest = await verifyModelPackage(dir);
  const model = await initialModel(dir, manifest.preset, 0, manifest.seed);
  const { files: _files, ...fields } = manifest;
  const staging = join(dirname(dir), `.${basename(dir)}.reexport`, basename(dir));
  await rm(dirname(staging), { recursive: true, force: true });
  await writeModelPackage(staging, {
    ...fields,
    config: JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')),
    files: {
      'tokenizer.json': await readFile(join(dir, 'tokenizer.json')),
      'model.safetensors': await readFile(join(dir, 'model.safetensors')),
      ...exportServingOnnx(model.config, model.weights),
    },
  });
  const old = join(dirname(dir), `.${basename(dir)}.old`);
  await rename(dir, old);
  await rename(staging, dir);
  await rm(old, { recursive: true, force: true });
  await rm(dirname(staging), { recursive: true, force: true });
  console.log(`${dir}: serving graphs rebuilt`);
}
