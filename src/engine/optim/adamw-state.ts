// AdamW state as safetensors tensors, so a training checkpoint is one self-describing file holding
// weights and optimizer together (nanoGPT-style). Layout, under a prefix (default "optimizer."):
//
//   <prefix>step          I64, shape []   steps taken so far
//   <prefix>m.<param>     F32, shape [n]  first moment of parameter <param>
//   <prefix>v.<param>     F32, shape [n]  second moment of parameter <param>
//
// The step is a tensor rather than a metadata string so that the state is complete in the tensor
// table alone, and an I64 one so it is exact however long a run lasts.

import type { SafetensorsTensors } from '../export/safetensors.ts';
import type { AdamWState } from './adamw.ts';

export const DEFAULT_ADAMW_PREFIX = 'optimizer.';

/** Tensors for `state` (views of its arrays, not copies). Parameter names may contain dots. */
export function adamwStateTensors(state: AdamWState, prefix = DEFAULT_ADAMW_PREFIX): SafetensorsTensors {
  if (!Number.isSafeInteger(state.step) || state.step < 0) {
    throw new RangeError(`AdamW state: step must be a non-negative integer, got ${state.step}`);
  }
  const tensors: SafetensorsTensors = {
    [`${prefix}step`]: { dtype: 'I64', shape: [], data: BigInt64Array.of(BigInt(state.step)) },
  };
  for (const [label, moments] of [['m', state.m], ['v', state.v]] as const) {
    for (const [name, data] of Object.entries(moments)) {
      tensors[`${prefix}${label}.${name}`] = { dtype: 'F32', shape: [data.length], data };
    }
  }
  return tensors;
}

/**
 * Rebuilds AdamW state from a checkpoint's tensors (other tensors, e.g. the weights, are ignored).
 * Checks what the file alone can tell: the step is there, every moment is F32 and 1-D, and m and v
 * name the same parameters with the same lengths. AdamW.importState then checks them against the
 * optimizer's own parameters.
 */
export function loadAdamwState(tensors: SafetensorsTensors, prefix = DEFAULT_ADAMW_PREFIX): AdamWState {
  const stepTensor = tensors[`${prefix}step`];
  if (stepTensor === undefined) throw new Error(`AdamW state: no "${prefix}step" tensor in the checkpoint`);
  if (stepTensor.dtype !== 'I64' || stepTensor.data.length !== 1) {
    throw new Error(`AdamW state: "${prefix}step" must be a single I64 value`);
  }
  const stepBig = stepTensor.data[0]!;
  if (stepBig < 0n || stepBig > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new Error(`AdamW state: "${prefix}step" is out of range: ${stepBig}`);
  }
  const m: Record<string, Float32Array> = {};
  const v: Record<string, Float32Array> = {};
  for (const [key, tensor] of Object.entries(tensors)) {
    if (!key.startsWith(prefix) || key === `${prefix}step`) continue;
    const rest = key.slice(prefix.length);
    const target = rest.startsWith('m.') ? m : rest.startsWith('v.') ? v : undefined;
    if (target === undefined) throw new Error(`AdamW state: unexpected tensor "${key}"`);
    if (tensor.dtype !== 'F32' || tensor.shape.length !== 1) {
      throw new Error(`AdamW state: "${key}" must be a 1-D F32 tensor, got ${tensor.dtype} ${JSON.stringify(tensor.shape)}`);
    }
    target[rest.slice(2)] = tensor.data;
  }
  const mNames = Object.keys(m).sort();
  const vNames = Object.keys(v).sort();
  if (mNames.join('\0') !== vNames.join('\0')) {
    const onlyM = mNames.filter((n) => !Object.hasOwn(v, n));
    const onlyV = vNames.filter((n) => !Object.hasOwn(m, n));
    throw new Error(`AdamW state: m and v differ (only in m: [${onlyM.join(', ')}]; only in v: [${onlyV.join(', ')}])`);
  }
  for (const name of mNames) {
    if (m[name]!.length !== v[name]!.length) {
      throw new Error(`AdamW state: m.${name} has ${m[name]!.length} elements but v.${name} has ${v[name]!.length}`);
    }
  }
  return { step: Number(stepBig), m, v };
}
