// npm run export:transformers-js -- --model <model id or HF folder> --out <dir>
// Writes the folder transformers.js loads for Qwen2-VL (onnx/vision_encoder, embed_tokens,
// decoder_model_merged + config, generation, processor and tokenizer files), built from our own
// network definition and the folder's weights (model.safetensors or shards; F32, F16 or BF16).
// Usable as `Qwen2VLForConditionalGeneration.from_pretrained(out, { dtype: 'fp32' })` /
// `pipeline('image-text-to-text', out)`.
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { isQwen2VLConfig, parseQwen2VLConfig } from '../src/engine/architectures/qwen2-vl/config.ts';
import { qwen2VLParamTable } from '../src/engine/architectures/qwen2-vl/params.ts';
import { qwen2VlCanonicalName } from '../src/engine/architectures/qwen2-vl/weight-names.ts';
import { TransformersJsExportError, writeTransformersJsFolder } from '../src/engine/architectures/qwen2-vl/transformers-js.ts';
import { readJsonFile } from '../src/hf/json-file.ts';
import { loadWeights, type ExpectedTable } from '../src/hf/weights.ts';
import { packageDirFor } from '../src/registry/model-package.ts';

const USAGE = 'usage: npm run export:transformers-js -- --model <model id or Hugging Face folder> --out <new or empty dir>';

/** A folder holding config.json is taken as it is; anything else names a package of the registry. */
function modelDirFor(model: string): string {
  return existsSync(join(model, 'config.json')) ? model : packageDirFor(model);
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { model: { type: 'string' }, out: { type: 'string' } } });
  if (!values.model || !values.out) {
    console.error(USAGE);
    process.exit(2);
  }
  const dir = modelDirFor(values.model);
  const out = resolve(values.out);
  if (existsSync(out) && (await readdir(out)).length > 0) throw new TransformersJsExportError(`${out}: exists and is not empty; pick a new directory`);
  const raw = await readJsonFile(dir, 'config.json');
  if (!isQwen2VLConfig(raw)) {
    const kind = raw.model_type ?? raw.family ?? 'unknown';
    throw new TransformersJsExportError(
      `${join(dir, 'config.json')}: a ${JSON.stringify(kind)} model; only Qwen2-VL (model_type "qwen2_vl") models export to transformers.js`,
    );
  }
  const config = parseQwen2VLConfig(raw, join(dir, 'config.json'));
  const expected: ExpectedTable = new Map(qwen2VLParamTable(config).map((p) => [p.name, { shape: p.shape }]));
  // A tied checkpoint may still carry lm_head.weight (some exporters write it): read past it.
  const canonicalName = (name: string) => (config.text.tieWordEmbeddings && name === 'lm_head.weight' ? null : qwen2VlCanonicalName(name));
  const started = Date.now();
  const loaded = await loadWeights(dir, { expected, canonicalName });
  const written = await writeTransformersJsFolder(out, { sourceDir: dir, rawConfig: raw, config, weights: loaded.weights });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`exported ${dir} (${loaded.parameterCount} parameters, ${loaded.dtypes.join('/')}) to ${out} in ${seconds} s`);
  for (const f of written.files) console.log(`  ${f}`);
}

await main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(
    error instanceof Error
      ? error.name === 'TransformersJsExportError' || error.name === 'HfFolderError' || error.name === 'Qwen2VLConfigError'
        ? `${error.name}: ${error.message}`
        : error.stack
      : String(error),
  );
  process.exit(1);
});
