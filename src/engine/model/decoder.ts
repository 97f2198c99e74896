// The decoder: pre-LN causal transformer over [image embeddings | text tokens], learned absolute
// positions, input and output embeddings tied.
import type { Value } from '../graph/builder.ts';
import * as o from '../graph/ops.ts';
import type { ModelConfig } from './config.ts';
import { block, layerNorm, type KeyValue } from './layers.ts';
import type { ParamSource } from './params.ts';

export function tokenEmbeddings(ps: ParamSource, c: ModelConfig): Value {
  return ps.get('decoder.embed_tokens.weight', [c.text.vocabSize, c.text.dim], 'normal', false);
}

export interface DecoderInputs {
  /** [B, S, D]: image embeddings and/or embedded tokens, already concatenated. */
  embeds: Value;
  /** [B, S] absolute positions (padding-aware). */
  positionIds: Value;
  /** [B, 1, S, P + S] additive causal + padding mask. */
  bias: Value;
  /** Per-layer cache of earlier positions, or null for a full pass. */
  past: KeyValue[] | null;
}

/** Returns the final normed hidden states [B, S, D] and the per-layer caches. */
export function decoderStack(ps: ParamSource, c: ModelConfig, inp: DecoderInputs): { hidden: Value; presents: KeyValue[] } {
  const t = c.text;
  const pos = ps.get('decoder.embed_positions.weight', [t.maxPositions, t.dim], 'normal', false);
  let x = o.add(inp.embeds, o.gather(pos, inp.positionIds, 0));
  const presents: KeyValue[] = [];
  for (let i = 0; i < t.layers; i++) {
    const r = block(ps, `decoder.blocks.${i}`, x, {
      ...t,
      eps: c.layerNormEps,
      bias: inp.bias,
      past: inp.past ? inp.past[i] : null,
    });
    x = r.out;
    presents.push(r.present);
  }
  return { hidden: layerNorm(ps, 'decoder.ln_f', x, t.dim, c.layerNormEps), presents };
}

/** Tied output head: logits = hidden · E^T. */
export function lmHead(ps: ParamSource, c: ModelConfig, hidden: Value): Value {
  return o.matmul(hidden, o.transposeLast2(tokenEmbeddings(ps, c)));
}
