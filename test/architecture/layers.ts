// The layers of src/, top to bottom. A unit (a folder of src/, or a file named here) may import only
// units of LOWER layers: never one above it, never a different unit of its own layer — except in
// OPEN_LAYERS, whose units may import each other as long as no cycle forms. Wiring, the only code
// that knows every part, sits on top. import-layers.test.ts enforces this table; a new folder under
// src/ must be placed here before the test passes.
export const LAYERS: readonly (readonly string[])[] = [
  // wiring: builds the parts and connects them (http/serve.ts builds the app and listens on it)
  ['app.ts', 'main.ts', 'http/serve.ts', 'cluster-server.ts', 'worker-main.ts'],
  // the HTTP edge: routes, middleware, the contract, the one error translation
  ['http'],
  // use cases behind the routes: answering (serving), fine-tune jobs, offline experiments
  ['serving', 'jobs', 'experiment'],
  // a replica following the shared database (models, A/B table); the models announced to all replicas
  ['cluster'],
  // the trainers, side by side: neither imports the other
  ['training/sft', 'training/grpo'],
  // what both trainers share (data order, checkpoints, evaluate-and-package); A/B feedback
  ['training', 'feedback'],
  // scoring a runtime on cases
  ['eval'],
  // loaded models: generation, batching, the registry of loaded models
  ['runtime'],
  // models on disk: our packages (manifest, verification, export of trained weights) and Hugging
  // Face folders read as they are (hf)
  ['registry', 'hf'],
  // the compute engine, data sets and tokenizer, image preprocessing, the A/B table
  ['engine', 'data', 'preprocess', 'routing'],
  // the audit trail (local file, or the shared database through store)
  ['audit'],
  // the shared database of a cluster deployment: pool, migrations, LISTEN, the local spool
  ['store'],
  // leaves every layer may use
  ['files', 'metrics', 'config.ts', 'errors.ts'],
];

/** Layers (by their first unit) whose units may import each other, acyclically: the wiring. */
export const OPEN_LAYERS: ReadonlySet<string> = new Set(['app.ts']);

/**
 * The unit a src-relative path belongs to: a file named in LAYERS, else its folder — two levels deep
 * under training/ and engine/, whose sub-folders are units of their own (for the cycle check;
 * engine's sub-folders share engine's layer).
 */
export function unitOf(srcRelative: string): string {
  const named = LAYERS.flat().find((u) => u.endsWith('.ts') && u === srcRelative);
  if (named) return named;
  const parts = srcRelative.split('/');
  if (parts.length === 1) return parts[0]!;
  if ((parts[0] === 'training' || parts[0] === 'engine') && parts.length > 2) return `${parts[0]}/${parts[1]}`;
  return parts[0]!;
}

/** Whether two units of one layer may import each other (wiring files; engine's sub-folders). */
export function sameLayerAllowed(from: string, to: string): boolean {
  const layer = LAYERS[layerOf(from)];
  if (!layer || layerOf(to) !== layerOf(from)) return false;
  if (OPEN_LAYERS.has(layer[0]!)) return true;
  return from.split('/')[0] === 'engine' && to.split('/')[0] === 'engine';
}

/** Index of the unit's layer in LAYERS (0 = top), or -1 when the table does not place it. */
export function layerOf(unit: string): number {
  const exact = LAYERS.findIndex((layer) => layer.includes(unit));
  if (exact >= 0) return exact;
  // engine/<sub> lives in engine's layer
  const top = unit.split('/')[0]!;
  return top === 'engine' ? LAYERS.findIndex((layer) => layer.includes('engine')) : -1;
}
