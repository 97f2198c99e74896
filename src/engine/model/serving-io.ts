// The contract between the model's graphs and the code that feeds them: tensor names a runtime feeds
// and reads, and the additive attention bias of a position that must not be attended to.

/** Added to the attention logits of masked positions: large enough that softmax gives them 0. */
export const MASKED = -1e9;

/** Decoder inputs: the cached keys/values of layer `layer`. */
export function pastNames(layer: number): { key: string; value: string } {
  return { key: `past_key_values.${layer}.key`, value: `past_key_values.${layer}.value` };
}
/** Outputs: the keys/values of the positions fed in this pass only (not past + new). */
export function newKeyValueNames(layer: number): { key: string; value: string } {
  return { key: `new_key_values.${layer}.key`, value: `new_key_values.${layer}.value` };
}
