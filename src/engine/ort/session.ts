// One place that creates ONNX Runtime sessions: execution providers tried in order with a CPU
// fallback, thread counts, optimisation level. Serving and training both come through here.
import * as ort from 'onnxruntime-node';

export interface SessionOptions {
  /** Execution providers in order of preference, e.g. ['cuda', 'cpu']. */
  executionProviders?: string[];
  intraOpThreads?: number;
  /** Float64 gradient checks want exact kernels, not fused approximations. */
  optimization?: 'all' | 'basic' | 'disabled';
  /** ORT session config entries, e.g. { session: { disable_prepacking: '1' } }. */
  extra?: Record<string, unknown>;
}

export interface OpenedSession {
  session: ort.InferenceSession;
  /** The provider the session ended up on. */
  provider: string;
}

export async function openSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<OpenedSession> {
  const wanted = opts.executionProviders?.length ? opts.executionProviders : ['cpu'];
  const errors: string[] = [];
  for (const provider of wanted) {
    try {
      const session = await ort.InferenceSession.create(model as Uint8Array, {
        executionProviders: [provider],
        graphOptimizationLevel: opts.optimization ?? 'all',
        intraOpNumThreads: opts.intraOpThreads ?? 0,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        ...(opts.extra ? { extra: opts.extra } : {}),
      });
      return { session, provider };
    } catch (err) {
      errors.push(`${provider}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  throw new Error(`no execution provider could open the model (${errors.join('; ')})`);
}

export type Feed = Record<string, ort.Tensor>;

export function f32(data: Float32Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float32', data, dims);
}
export function f64(data: Float64Array, dims: readonly number[]): ort.Tensor {
  return new ort.Tensor('float64', data, dims);
}
export function i64(data: BigInt64Array | readonly number[], dims: readonly number[]): ort.Tensor {
  const arr = data instanceof BigInt64Array ? data : BigInt64Array.from(data.map((x) => BigInt(x)));
  return new ort.Tensor('int64', arr, dims);
}

export { ort };
