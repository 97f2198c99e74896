// The backward pass of a LoRA training graph: gradients for the adapters' A and B and for nothing
// else. The frozen base weights are graph inputs that no gradient is asked of, so autodiff emits no
// weight-gradient products for them (the activations' gradients still flow through them).
import type { Graph } from '../graph/builder.ts';
import { backward, type GradSeed } from '../autodiff/backward.ts';
import type { LoraSource } from './graph.ts';

/**
 * Appends the backward pass for `seeds` and outputs `grad.<tensor>` for every A and B the graph used;
 * returns tensor name (target.aName / bName) → graph output name.
 */
export function addLoraGradients(graph: Graph, seeds: GradSeed[], lora: LoraSource): Map<string, string> {
  const values = lora.adapterValues();
  const grads = backward(graph, seeds, values);
  const outputs = new Map<string, string>();
  for (const v of values) {
    const gv = grads.get(v);
    if (!gv) throw new Error(`LoRA: no gradient reaches ${v.name}; its layer does not feed the seeded outputs`);
    outputs.set(v.name, graph.output(gv, `grad.${v.name}`).name);
  }
  return outputs;
}
