// The vision encoder: linear patch embedding + learned positions + pre-LN blocks (full
// attention over the patches), then a projection into the decoder's embedding space.
import type { Value } from '../graph/builder.ts';
import * as o from '../graph/ops.ts';
import type { ModelConfig } from './config.ts';
import { numPatches, patchDim } from './config.ts';
import { block, layerNorm, linear } from './layers.ts';
import type { ParamSource } from './params.ts';

/** patches [B, Np, P] -> image embeddings [B, Np, D_text]. */
export function visionEncoder(ps: ParamSource, c: ModelConfig, patches: Value): Value {
  const v = c.vision;
  // 1. embed patches and add learned positions
  let x = linear(ps, 'vision.patch_embed', patches, patchDim(c), v.dim);
  x = o.add(x, ps.get('vision.pos_embed', [numPatches(c), v.dim], 'normal', false));
  // 2. transformer blocks
  for (let i = 0; i < v.layers; i++) {
    x = block(ps, `vision.blocks.${i}`, x, { ...v, eps: c.layerNormEps, bias: null, past: null }).out;
  }
  // 3. final norm and projection to the decoder width
  x = layerNorm(ps, 'vision.ln_f', x, v.dim, c.layerNormEps);
  return linear(ps, 'projector', x, v.dim, c.text.dim);
}
