// Where a run's starting weights come from: a fresh initialisation of a preset ("scratch"), a
// training checkpoint directory, or a model package (models/<id>). The model config travels with
// the weights, so fine-tuning a package keeps its architecture whatever preset the config names.
import { readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { presetConfig, type ModelConfig } from '../engine/model/config.ts';
import { initWeights, type ParamSpec, type Weights } from '../engine/model/params.ts';
import { parameterSpecs } from '../engine/model/vlm.ts';
import { readSafetensors } from '../engine/export/safetensors.ts';
import { verifyModelPackage } from '../registry/model-package.ts';
import { loadCheckpoint } from './checkpoint.ts';

export interface InitialModel {
  config: ModelConfig;
  specs: ParamSpec[];
  weights: Weights;
  /** Model package id the weights came from, if any (the new model's parent). */
  parent: string | null;
  source: string;
}

async function isFile(p: string): Promise<boolean> {
  return (await stat(p).catch(() => null))?.isFile() ?? false;
}

export async function initialModel(init: string, preset: string, vocabSize: number, seed: number): Promise<InitialModel> {
  if (init === 'scratch') {
    const config = presetConfig(preset, vocabSize);
    const specs = parameterSpecs(config);
    return { config, specs, weights: initWeights(specs, seed, config.text.layers), parent: null, source: 'scratch' };
  }
  let config: ModelConfig;
  let weights: Weights = new Map();
  let parent: string | null = null;
  if (await isFile(join(init, 'manifest.json'))) {
    const manifest = await verifyModelPackage(init);
    config = JSON.parse(await readFile(join(init, 'config.json'), 'utf8')) as ModelConfig;
    for (const [name, t] of Object.entries((await readSafetensors(join(init, 'model.safetensors'))).tensors)) weights.set(name, t.data as Float32Array);
    parent = manifest.id;
  } else if (await isFile(join(init, 'trainer-state.json'))) {
    const ckpt = await loadCheckpoint(init, false);
    if ('modelType' in ckpt.state.modelConfig)
      throw new Error(`${init} is a checkpoint of a ${ckpt.state.modelConfig.modelType} run; resume it with its own trainer`);
    config = ckpt.state.modelConfig;
    weights = ckpt.weights;
  } else {
    throw new Error(`init "${init}" is neither "scratch", a model package nor a checkpoint directory`);
  }
  if (config.text.vocabSize < vocabSize) throw new Error(`${basename(init)}: model vocabulary ${config.text.vocabSize} < tokenizer ${vocabSize}`);
  const specs = parameterSpecs(config);
  for (const s of specs) {
    const w = weights.get(s.name);
    if (!w || w.length !== s.shape.reduce((a, b) => a * b, 1)) throw new Error(`${init}: weight ${s.name} is missing or has the wrong size`);
  }
  return { config, specs, weights, parent, source: init };
}
