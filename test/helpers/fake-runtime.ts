// A fake ModelRuntime for HTTP and serving unit tests (never used outside tests): answers after a
// configurable delay, records every batch it was given, and can fail or hang on demand. The
// answers depend on the inputs, so a test can tell which request got which result.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { preprocessImage } from '../../src/preprocess/image.ts';
import type { ImageConfig, ImageLimits, InferenceRequest, InferenceResult, ModelRuntime, PreparedImage, RuntimeLoader } from '../../src/runtime/types.ts';

export const FAKE_IMAGE_CONFIG: ImageConfig = { imageSize: 32, patchSize: 16, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] };

export interface FakeBehaviour {
  /** Time one generateBatch call takes (the same for any batch size, as batching intends). */
  delayMs?: number;
  maxBatch?: number;
  /** Thrown by generateBatch. */
  failWith?: Error;
  executionProvider?: string;
}

export class FakeRuntime implements ModelRuntime {
  readonly imageConfig = FAKE_IMAGE_CONFIG;
  readonly maxBatch: number;
  readonly executionProvider: string;
  readonly batches: number[] = [];
  disposed = false;
  inFlight = 0;

  constructor(
    readonly id: string,
    readonly manifest: Record<string, unknown>,
    private readonly behaviour: FakeBehaviour = {},
  ) {
    this.maxBatch = behaviour.maxBatch ?? 16;
    this.executionProvider = behaviour.executionProvider ?? 'cpu';
  }

  /** The real square preprocessing, so bad uploads fail exactly as they do in production. */
  async prepareImage(bytes: Uint8Array, limits: ImageLimits): Promise<PreparedImage> {
    const { imageSize, patchSize, mean, std } = this.imageConfig;
    return { patches: (await preprocessImage(bytes, { imageSize, patchSize, channels: 3, mean, std, ...limits })).patches };
  }

  async generateBatch(reqs: InferenceRequest[]): Promise<InferenceResult[]> {
    if (this.disposed) throw new Error(`fake runtime ${this.id} used after dispose`);
    if (reqs.length > this.maxBatch) throw new Error(`batch of ${reqs.length} > maxBatch ${this.maxBatch}`);
    this.batches.push(reqs.length);
    this.inFlight++;
    try {
      if (this.behaviour.delayMs) await new Promise((r) => setTimeout(r, this.behaviour.delayMs));
      if (this.behaviour.failWith) throw this.behaviour.failWith;
      return reqs.map((req) => {
        const words = req.question.trim().split(/\s+/).length;
        const answer = `${this.id} answer ${words}`;
        const reasoning = `patches ${req.patches.length}`;
        return {
          text: `<think>${reasoning}</think><answer>${answer}</answer>`,
          answer,
          reasoning,
          promptTokens: req.patches.length / (16 * 16 * 3) + words,
          completionTokens: Math.min(req.params.maxTokens, 7),
          finishReason: req.params.maxTokens < 7 ? 'length' : 'stop',
          timings: { visionMs: 1, decodeMs: 2 },
        };
      });
    } finally {
      this.inFlight--;
    }
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}

/** A loader that reads the package's manifest.json and builds a FakeRuntime; keeps what it built. */
export function fakeLoader(behaviour: FakeBehaviour = {}): RuntimeLoader & { built: FakeRuntime[] } {
  const built: FakeRuntime[] = [];
  const loader = async (packageDir: string): Promise<ModelRuntime> => {
    const manifest = JSON.parse(await readFile(path.join(packageDir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const runtime = new FakeRuntime(path.basename(packageDir), manifest, behaviour);
    built.push(runtime);
    return runtime;
  };
  return Object.assign(loader, { built });
}
