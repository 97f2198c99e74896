// A qwen2_vl base folder's config and weights as float32 (F32, F16 or BF16 shards, public or v5
// names), read by the same loader the server uses.
import { parseQwen2VLConfig, type Qwen2VLConfig } from '../engine/architectures/qwen2-vl/config.ts';
import { qwen2VLExpectedTensors, type Qwen2VLWeights } from '../engine/architectures/qwen2-vl/params.ts';
import { qwen2VlCanonicalName } from '../engine/architectures/qwen2-vl/weight-names.ts';
import { loadWeights } from '../hf/weights.ts';
import type { JsonRecord } from '../hf/json-file.ts';

export async function loadQwen2VLBase(dir: string, rawConfig: JsonRecord): Promise<{ config: Qwen2VLConfig; weights: Qwen2VLWeights; sha256: string }> {
  const config = parseQwen2VLConfig(rawConfig);
  const loaded = await loadWeights(dir, { expected: qwen2VLExpectedTensors(config), canonicalName: qwen2VlCanonicalName });
  // A tied head may be stored anyway; the network reads the embeddings.
  if (config.text.tieWordEmbeddings) loaded.weights.delete('lm_head.weight');
  return { config, weights: loaded.weights, sha256: loaded.sha256 };
}
