// Image decoding as a bounded, queued stage with two lanes chosen by estimated decode cost.
//
// sharp decodes on libuv's thread pool (4 threads by default), so a burst of expensive images
// (a 16-bit RGBA PNG of 7071x7071 inflates to 400 MB and takes over a second) used to occupy
// every thread while ordinary requests waited behind them for seconds, and nothing refused them.
// Now an image whose header promises more than `largeDecodedBytes` of samples waits in the large
// lane (one at a time by default, short queue), ordinary images in the standard lane; each lane
// refuses with 503 + Retry-After when its queue is full. Cheap images thus never queue behind
// expensive ones, and the pool keeps a thread free for everything else (header reads, fs).
import { ApiError } from '../errors.ts';
import { estimateDecodeCost } from '../preprocess/decode-cost.ts';
import { preprocessImage, type PreprocessedImage, type PreprocessOptions } from '../preprocess/image.ts';
import { RequestCancelledError } from '../runtime/batcher.ts';
import { WorkCancelledError, WorkQueue, WorkQueueFullError } from './work-queue.ts';

export interface PreprocessStageOptions {
  /** Ordinary images decoded at once, and waiting. */
  concurrency: number;
  maxQueue: number;
  /** Images estimated above `largeDecodedBytes`: decoded at once, and waiting. */
  largeConcurrency: number;
  largeMaxQueue: number;
  largeDecodedBytes: number;
}

export type DecodeLane = 'standard' | 'large';
type Preprocess = (bytes: Uint8Array, options: PreprocessOptions) => Promise<PreprocessedImage>;

export class PreprocessStage {
  private readonly lanes: Record<DecodeLane, WorkQueue>;

  constructor(
    private readonly options: PreprocessStageOptions,
    private readonly preprocess: Preprocess = preprocessImage,
    private readonly onRejected?: (lane: DecodeLane) => void,
  ) {
    this.lanes = {
      standard: new WorkQueue({ concurrency: options.concurrency, maxQueue: options.maxQueue }),
      large: new WorkQueue({ concurrency: options.largeConcurrency, maxQueue: options.largeMaxQueue }),
    };
  }

  /** Waiting and running per lane, for metrics. */
  depth(): Record<DecodeLane, { queued: number; running: number }> {
    const of = (q: WorkQueue) => ({ queued: q.queued, running: q.running });
    return { standard: of(this.lanes.standard), large: of(this.lanes.large) };
  }

  laneFor(bytes: Uint8Array, options: PreprocessOptions): DecodeLane | 'none' {
    const cost = estimateDecodeCost(bytes, options.imageSize);
    // Over the byte or pixel limit, or no readable header: the decoder refuses it from the header
    // alone, which costs nothing worth queueing for.
    if (!cost || bytes.length > options.maxBytes || cost.width * cost.height > options.maxInputPixels) return 'none';
    return cost.decodedBytes > this.options.largeDecodedBytes ? 'large' : 'standard';
  }

  async run(bytes: Uint8Array, options: PreprocessOptions, signal?: AbortSignal): Promise<PreprocessedImage> {
    const lane = this.laneFor(bytes, options);
    if (lane === 'none') return this.preprocess(bytes, options);
    try {
      return await this.lanes[lane].run(() => this.preprocess(bytes, options), signal);
    } catch (error) {
      if (error instanceof WorkQueueFullError) {
        this.onRejected?.(lane);
        const what = lane === 'large' ? 'Too many large images are waiting to be decoded' : 'Too many images are waiting to be decoded';
        throw ApiError.of('queue_full', `${what}; retry later.`, { headers: { 'Retry-After': String(error.retryAfterSeconds) } });
      }
      if (error instanceof WorkCancelledError) throw new RequestCancelledError('client went away while its image waited to be decoded');
      throw error;
    }
  }
}
