// A tiny two-layer network with LoRA on both layers: merging equals running the adapter on the base,
// and a few AdamW steps train A and B only (the frozen base is fed, never differentiated or changed).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, type Value } from '../../../src/engine/graph/builder.ts';
import * as o from '../../../src/engine/graph/ops.ts';
import { serializeGraph } from '../../../src/engine/graph/serialize.ts';
import { addLoraGradients } from '../../../src/engine/lora/backward.ts';
import { openSession, f32, type Feed } from '../../../src/engine/ort/session.ts';
import { AdamW } from '../../../src/engine/optim/adamw.ts';
import { gaussian, type Weights } from '../../../src/engine/model/params.ts';
import { rng } from '../../../src/engine/random.ts';
import { parseLoraConfig, type LoraConfig } from '../../../src/engine/lora/config.ts';
import { LoraSource, loraLinear } from '../../../src/engine/lora/graph.ts';
import { initLoraWeights } from '../../../src/engine/lora/init.ts';
import { mergeLora } from '../../../src/engine/lora/merge.ts';
import { selectLoraTargets, type LoraTarget } from '../../../src/engine/lora/targets.ts';

const DIMS = { in: 6, hidden: 5, out: 4 };
const TABLE = [
  { name: 'net.fc1.weight', shape: [DIMS.hidden, DIMS.in] },
  { name: 'net.fc1.bias', shape: [DIMS.hidden] },
  { name: 'net.fc2.weight', shape: [DIMS.out, DIMS.hidden] },
  { name: 'net.fc2.bias', shape: [DIMS.out] },
];
const ROWS = 8;

function baseWeights(seed: number): Weights {
  const normal = gaussian(rng(seed));
  return new Map(TABLE.map((p) => [p.name, Float32Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => 0.5 * normal())]));
}

/** The network; base weights are graph inputs (one copy, fed) or initializers (serving). */
function network(g: Graph, base: { kind: 'inputs' } | { kind: 'initializers'; weights: Weights }, lora: LoraSource | null) {
  const param = (name: string, shape: number[]): Value =>
    base.kind === 'inputs' ? g.input(name, 'float32', shape) : g.initializer(name, 'float32', shape, base.weights.get(name)!);
  const x = g.input('x', 'float32', ['N', DIMS.in]);
  const w1 = param('net.fc1.weight', [DIMS.hidden, DIMS.in]);
  const b1 = param('net.fc1.bias', [DIMS.hidden]);
  const w2 = param('net.fc2.weight', [DIMS.out, DIMS.hidden]);
  const b2 = param('net.fc2.bias', [DIMS.out]);
  const h = o.tanh(loraLinear(x, { weight: w1, bias: b1 }, lora?.adapter('net.fc1', x) ?? null));
  const y = loraLinear(h, { weight: w2, bias: b2 }, lora?.adapter('net.fc2', h) ?? null);
  g.output(y, 'y');
  return { x, y, baseInputs: [w1, b1, w2, b2] };
}

async function forward(g: Graph, feed: Feed): Promise<Float32Array> {
  const { session } = await openSession(serializeGraph(g), { optimization: 'disabled' });
  const out = await session.run(feed);
  await session.release();
  return out.y.data as Float32Array;
}

const inputs = Float32Array.from(seededNormal(ROWS * DIMS.in, 9));
function seededNormal(n: number, seed: number): number[] {
  const normal = gaussian(rng(seed));
  return Array.from({ length: n }, () => normal());
}

function adapterFeed(targets: readonly LoraTarget[], weights: Weights, r: number): Feed {
  const feed: Feed = {};
  for (const t of targets) {
    feed[t.aName] = f32(weights.get(t.aName)!, [r, t.inFeatures]);
    feed[t.bName] = f32(weights.get(t.bName)!, [t.outFeatures, r]);
  }
  return feed;
}

test('a merged adapter gives the same outputs as the adapter on its base (max abs <= 1e-5)', async () => {
  const config = parseLoraConfig({ r: 3, lora_alpha: 12, target_modules: ['fc1', 'fc2'], init_lora_weights: false });
  const targets = selectLoraTargets(TABLE, config);
  const base = baseWeights(1);
  const adapter = initLoraWeights(targets, config, 2); // init false: B ≠ 0, so the adapter does something
  const g1 = new Graph('adapter_on_base');
  const lora = new LoraSource(g1, targets, config, { kind: 'initializers', weights: adapter });
  network(g1, { kind: 'initializers', weights: base }, lora);
  const onBase = await forward(g1, { x: f32(inputs, [ROWS, DIMS.in]) });

  const merged = mergeLora(base, targets, adapter, config);
  const g2 = new Graph('merged');
  network(g2, { kind: 'initializers', weights: merged }, null);
  const fromMerged = await forward(g2, { x: f32(inputs, [ROWS, DIMS.in]) });

  const g3 = new Graph('base_only');
  network(g3, { kind: 'initializers', weights: base }, null);
  const plain = await forward(g3, { x: f32(inputs, [ROWS, DIMS.in]) });

  const maxDiff = (p: Float32Array, q: Float32Array) => p.reduce((m, v, i) => Math.max(m, Math.abs(v - q[i])), 0);
  assert.ok(maxDiff(onBase, fromMerged) <= 1e-5, `merged vs adapter: ${maxDiff(onBase, fromMerged)}`);
  assert.ok(maxDiff(onBase, plain) > 0.1, 'the adapter must change the outputs for the comparison to mean anything');
  // The base table is left as it was; only adapted weights are new arrays.
  assert.equal(merged.get('net.fc1.bias'), base.get('net.fc1.bias'));
  assert.notEqual(merged.get('net.fc1.weight'), base.get('net.fc1.weight'));
  assert.deepEqual(base, baseWeights(1));
});

test('training: gradients reach only A and B; AdamW holds state for them only; the base is unchanged', async () => {
  const config: LoraConfig = parseLoraConfig({ r: 2, lora_alpha: 4, target_modules: 'all-linear' });
  const targets = selectLoraTargets(TABLE, config);
  const base = baseWeights(3);
  const baseBefore = new Map([...base].map(([k, v]) => [k, v.slice()]));
  const adapter = initLoraWeights(targets, config, 4);

  const g = new Graph('lora_train');
  const lora = new LoraSource(g, targets, config, { kind: 'inputs', dropout: false });
  const { y, baseInputs } = network(g, { kind: 'inputs' }, lora);
  const goal = g.input('goal', 'float32', ['N', DIMS.out]);
  const loss = o.reduceMean(o.pow(o.sub(y, goal), 2), [0, 1], false);
  const seed = g.input('seed', 'float32', []);
  const forwardNodes = g.nodes.length;
  const gradOutputs = addLoraGradients(g, [{ value: loss, grad: seed }], lora);
  assert.deepEqual([...gradOutputs.keys()].sort(), targets.flatMap((t) => [t.aName, t.bName]).sort());
  // No base weight is differentiated: no product in the backward pass has a base weight's shape
  // (either orientation), so no work or memory goes to gradients that would be thrown away. (W itself
  // is read, transposed, to carry the gradient back to the layer's input.)
  const baseShapes = baseInputs.filter((w) => w.rank === 2).flatMap((w) => [w.shape.join('x'), [...w.shape].reverse().join('x')]);
  for (const n of g.nodes.slice(forwardNodes).filter((m) => m.op === 'MatMul' || m.op === 'Gemm')) {
    for (const out of n.outputs) assert.ok(!baseShapes.includes(out.shape.join('x')), `${n.op} computes ${out} in the backward pass`);
  }
  g.output(loss, 'loss');
  const { session } = await openSession(serializeGraph(g));

  // A goal the adapter can reach: the base network with a different fc2.
  const goalWeights = new Map(base);
  goalWeights.set(
    'net.fc2.weight',
    base.get('net.fc2.weight')!.map((v, i) => v + 0.3 * Math.sin(i)),
  );
  const gGoal = new Graph('goal');
  network(gGoal, { kind: 'initializers', weights: goalWeights }, null);
  const goalOut = await forward(gGoal, { x: f32(inputs, [ROWS, DIMS.in]) });

  const opt = new AdamW(adapter, { weightDecay: 0 });
  const feedFor = (): Feed => ({
    x: f32(inputs, [ROWS, DIMS.in]),
    goal: f32(goalOut, [ROWS, DIMS.out]),
    seed: f32(Float32Array.of(1), []),
    ...Object.fromEntries(TABLE.map((p) => [p.name, f32(base.get(p.name)!, p.shape)])),
    ...adapterFeed(targets, adapter, config.r),
  });
  const losses: number[] = [];
  for (let step = 0; step < 40; step++) {
    const out = await session.run(feedFor());
    losses.push((out.loss.data as Float32Array)[0]);
    const stepGrads = new Map([...gradOutputs].map(([n, output]) => [n, out[output].data as Float32Array]));
    if (step === 0) {
      // B starts at zero, so the first step moves B only: ∂L/∂A = (scale·B)ᵀ·… is exactly 0.
      for (const t of targets) {
        assert.ok(
          stepGrads.get(t.aName)!.every((v) => v === 0),
          `${t.aName} gradient at step 0`,
        );
        assert.ok(
          stepGrads.get(t.bName)!.some((v) => v !== 0),
          `${t.bName} gradient at step 0`,
        );
      }
    }
    opt.step(stepGrads, 0.05);
  }
  await session.release();
  assert.ok(losses[losses.length - 1] < 0.2 * losses[0], `loss ${losses[0]} → ${losses[losses.length - 1]}`);
  for (const t of targets) assert.ok(adapter.get(t.aName)!.some((v, i) => v !== initLoraWeights(targets, config, 4).get(t.aName)![i]));
  const state = opt.exportState();
  assert.deepEqual(Object.keys(state.m).sort(), targets.flatMap((t) => [t.aName, t.bName]).sort());
  for (const [name, w] of base) assert.deepEqual(w, baseBefore.get(name), `${name} changed`);
});

test('one serving session on one base serves several adapters fed as inputs, each equal to its merged weights', async () => {
  const config = parseLoraConfig({ r: 2, lora_alpha: 2, target_modules: ['fc1', 'fc2'], init_lora_weights: false });
  const targets = selectLoraTargets(TABLE, config);
  const base = baseWeights(5);
  const g = new Graph('base_with_adapter_inputs');
  network(g, { kind: 'initializers', weights: base }, new LoraSource(g, targets, config, { kind: 'inputs', dropout: false }));
  const { session } = await openSession(serializeGraph(g));
  for (const seed of [21, 22]) {
    const adapter = initLoraWeights(targets, config, seed);
    const out = await session.run({ x: f32(inputs, [ROWS, DIMS.in]), ...adapterFeed(targets, adapter, config.r) });
    const gm = new Graph('merged');
    network(gm, { kind: 'initializers', weights: mergeLora(base, targets, adapter, config) }, null);
    const merged = await forward(gm, { x: f32(inputs, [ROWS, DIMS.in]) });
    const y = out.y.data as Float32Array;
    const diff = y.reduce((m, v, i) => Math.max(m, Math.abs(v - merged[i])), 0);
    assert.ok(diff <= 1e-5, `adapter ${seed}: ${diff}`);
  }
  // A zero adapter is the base model itself.
  const zero = new Map([...initLoraWeights(targets, config, 1)].map(([k, v]) => [k, new Float32Array(v.length)]));
  const out = await session.run({ x: f32(inputs, [ROWS, DIMS.in]), ...adapterFeed(targets, zero, config.r) });
  const gb = new Graph('base');
  network(gb, { kind: 'initializers', weights: base }, null);
  const plain = await forward(gb, { x: f32(inputs, [ROWS, DIMS.in]) });
  assert.ok((out.y.data as Float32Array).every((v, i) => Math.abs(v - plain[i]) <= 1e-6));
  await session.release();
});
