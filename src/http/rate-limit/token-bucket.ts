// Token buckets keyed by caller: each key holds up to `burst` tokens, refilled at `perSecond`;
// a request takes one or is refused with the time until one is back. Time comes from an injected
// clock, so behaviour is exact in tests.

export interface BucketLimit {
  perSecond: number;
  burst: number;
}

export type TakeResult = { allowed: true; remaining: number } | { allowed: false; retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedMs: number;
}

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Takes one token from `key`'s bucket under `limit` (perSecond 0 = unlimited). */
  take(key: string, limit: BucketLimit): TakeResult {
    if (limit.perSecond <= 0) return { allowed: true, remaining: Infinity };
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: limit.burst, updatedMs: now };
    bucket.tokens = Math.min(limit.burst, bucket.tokens + ((now - bucket.updatedMs) / 1000) * limit.perSecond);
    bucket.updatedMs = now;
    this.buckets.set(key, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, remaining: Math.floor(bucket.tokens) };
    }
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / limit.perSecond)) };
  }
}
