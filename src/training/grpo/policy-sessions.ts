// The policy being trained, as serving graphs that take their weights as inputs: rollouts decode
// with the current weights every step without re-exporting or re-opening anything.
import { serializeGraph } from '../../engine/graph/serialize.ts';
import type { ModelConfig } from '../../engine/model/config.ts';
import type { ParamSpec, Weights } from '../../engine/model/params.ts';
import { buildDecoderGraph, buildVisionGraph, parameterSpecs } from '../../engine/model/vlm.ts';
import { f32, openSession, type Feed } from '../../engine/ort/session.ts';
import type { ServingSessions } from '../../runtime/generate.ts';

export interface PolicySessions {
  /** Sessions fed with `weights` as they are now (call again after each optimizer step). */
  withWeights(weights: Weights): ServingSessions;
  release(): Promise<void>;
}

export async function openPolicySessions(config: ModelConfig, intraOpThreads?: number): Promise<PolicySessions> {
  const visionGraph = buildVisionGraph(config);
  const decoderGraph = buildDecoderGraph(config);
  // The serving graphs' weight inputs are exactly the model's parameters (the rest are data).
  const params = new Map(parameterSpecs(config).map((p) => [p.name, p]));
  const weightInputs = (g: typeof visionGraph) => g.inputs.filter((v) => params.has(v.name)).map((v) => params.get(v.name)!);
  const visionParams = weightInputs(visionGraph);
  const decoderParams = weightInputs(decoderGraph);
  const vision = await openSession(serializeGraph(visionGraph), { intraOpThreads });
  const decoder = await openSession(serializeGraph(decoderGraph), { intraOpThreads });
  const feedOf = (specs: ParamSpec[], weights: Weights): Feed => Object.fromEntries(specs.map((p) => [p.name, f32(weights.get(p.name)!, p.shape)]));
  return {
    withWeights: (weights) => ({
      config,
      vision: vision.session,
      decoder: decoder.session,
      visionExtraFeed: feedOf(visionParams, weights),
      decoderExtraFeed: feedOf(decoderParams, weights),
    }),
    release: async () => {
      await vision.session.release();
      await decoder.session.release();
    },
  };
}
