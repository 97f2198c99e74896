import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBuckets } from '../../../src/http/rate-limit/token-bucket.ts';

test('a key may spend its burst at once, then one request per refill interval', () => {
  let now = 0;
  const buckets = new TokenBuckets(() => now);
  const limit = { perSecond: 2, burst: 3 };
  for (let i = 0; i < 3; i++) assert.equal(buckets.take('k', limit).allowed, true);
  assert.deepEqual(buckets.take('k', limit), { allowed: false, retryAfterSeconds: 1 });
  now = 499;
  assert.equal(buckets.take('k', limit).allowed, false);
  now = 500; // one token back at 2 per second
  assert.equal(buckets.take('k', limit).allowed, true);
  assert.equal(buckets.take('k', limit).allowed, false);
  now = 60_000; // refills up to the burst, not beyond
  for (let i = 0; i < 3; i++) assert.equal(buckets.take('k', limit).allowed, true);
  assert.equal(buckets.take('k', limit).allowed, false);
});

test('keys have their own buckets', () => {
  const buckets = new TokenBuckets(() => 0);
  const limit = { perSecond: 1, burst: 1 };
  assert.equal(buckets.take('a', limit).allowed, true);
  assert.equal(buckets.take('a', limit).allowed, false);
  assert.equal(buckets.take('b', limit).allowed, true);
});

test('Retry-After is the time until a whole token is back, at least 1 s', () => {
  let now = 0;
  const buckets = new TokenBuckets(() => now);
  const slow = { perSecond: 0.1, burst: 1 };
  buckets.take('k', slow);
  assert.deepEqual(buckets.take('k', slow), { allowed: false, retryAfterSeconds: 10 });
  now = 4_000;
  assert.deepEqual(buckets.take('k', slow), { allowed: false, retryAfterSeconds: 6 });
});

test('perSecond 0 means no limit', () => {
  const buckets = new TokenBuckets(() => 0);
  for (let i = 0; i < 1000; i++) assert.equal(buckets.take('k', { perSecond: 0, burst: 1 }).allowed, true);
});
