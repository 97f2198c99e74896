// The architectures this server can serve, and the one loader that picks among them. A model
// directory is either one of our own packages (manifest.json: today's clinvqa-vlm family) or a
// Hugging Face folder, whose config.json (`model_type`, else `architectures`) picks its entry here.
//
// Adding an architecture (Qwen2.5-VL, SmolVLM/Idefics3): its definition goes in one folder under
// src/engine/architectures/<name>/ (config parser, parameter table, graphs, image processor, prompt
// and positions), its runtime next to src/runtime/qwen2-vl/, and one line in HF_ARCHITECTURES.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pickArchitecture, type ArchitectureKey } from '../hf/architecture-choice.ts';
import { readJsonFile } from '../hf/json-file.ts';
import { loadRuntime } from './model-runtime.ts';
import { loadQwen2VlRuntime } from './qwen2-vl/runtime.ts';
import type { ModelRuntime, RuntimeLoader } from './types.ts';

export interface ArchitectureLoadOptions {
  executionProviders: string[];
  intraOpThreads?: number;
  /** Derived files (serving graphs) are cached under it; a model folder is never written to. */
  dataDir: string;
  log?(message: string, fields?: Record<string, unknown>): void;
}

export interface RuntimeArchitecture extends ArchitectureKey {
  load(dir: string, opts: ArchitectureLoadOptions): Promise<ModelRuntime>;
}

export const HF_ARCHITECTURES: readonly RuntimeArchitecture[] = [
  { modelType: 'qwen2_vl', hfClasses: ['Qwen2VLForConditionalGeneration'], load: loadQwen2VlRuntime },
];

/** Whether `dir` holds one of our packages (as opposed to a Hugging Face folder). */
export function isOwnPackage(dir: string): boolean {
  return existsSync(join(dir, 'manifest.json'));
}

/** The server's loader: our packages by their manifest, Hugging Face folders by their config.json. */
export function createModelLoader(base: { dataDir: string; log?: ArchitectureLoadOptions['log'] }): RuntimeLoader {
  return async (dir, opts) => {
    if (isOwnPackage(dir)) return loadRuntime(dir, opts);
    const config = await readJsonFile(dir, 'config.json');
    const architecture = pickArchitecture(dir, config, HF_ARCHITECTURES);
    return architecture.load(dir, { ...opts, dataDir: base.dataDir, ...(base.log ? { log: base.log } : {}) });
  };
}
