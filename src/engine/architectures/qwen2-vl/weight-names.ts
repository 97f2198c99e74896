// Qwen2-VL parameter names in checkpoint files → the canonical names of the public checkpoint
// (`model.*` for the decoder, `visual.*` for the vision tower, `lm_head.weight`), which the
// parameter table uses. transformers ≥ 4.52 and v5 save the same tensors as
// `model.language_model.*` and `model.visual.*` (its _checkpoint_conversion_mapping, reversed).

const LATER_TEXT_PREFIX = 'model.language_model.';
const LATER_VISION_PREFIX = 'model.visual.';

/**
 * The canonical name of a tensor stored as `fileName`; null for rotary `inv_freq` buffers (computed,
 * never loaded; older exports saved them); undefined for a name that is no Qwen2-VL parameter.
 */
export function qwen2VlCanonicalName(fileName: string): string | null | undefined {
  if (fileName.endsWith('.rotary_emb.inv_freq')) return null;
  if (fileName.startsWith(LATER_TEXT_PREFIX)) return `model.${fileName.slice(LATER_TEXT_PREFIX.length)}`;
  if (fileName.startsWith(LATER_VISION_PREFIX)) return `visual.${fileName.slice(LATER_VISION_PREFIX.length)}`;
  if (fileName.startsWith('model.') || fileName.startsWith('visual.') || fileName === 'lm_head.weight') return fileName;
  return undefined;
}
