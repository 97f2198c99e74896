import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextTable, type AbTable, type AbVariant } from '../../src/routing/ab-table.ts';
import { pickVariant, stickyPoint } from '../../src/routing/sticky-router.ts';
import { rng as mulberry32 } from '../../src/engine/random.ts';

const NOW = new Date('2025-01-01T00:00:00Z');
const everyModel = (): boolean => true;

function table(weights: Record<string, number>, previous: AbTable | null = null): AbTable {
  const variants: AbVariant[] = Object.entries(weights).map(([model, weight]) => ({ name: model, model, weight }));
  return nextTable(previous, { variants, stickyHeader: 'X-Client-Id' }, { origin: 'admin', now: NOW });
}

const clients = Array.from({ length: 10_000 }, (_, i) => `client-${i}`);

function shares(t: AbTable, ids: readonly (string | undefined)[], random?: () => number): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) {
    const name = pickVariant(t, id, everyModel, random)!.variant.name;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return new Map([...counts].map(([k, v]) => [k, v / ids.length]));
}

test('10k client ids split 0.9/0.1 within 1.5 points (5 sigma)', () => {
  const s = shares(table({ grpo: 0.9, sft: 0.1 }), clients);
  assert.ok(Math.abs(s.get('grpo')! - 0.9) < 0.015, `grpo share ${s.get('grpo')}`);
  assert.ok(Math.abs(s.get('sft')! - 0.1) < 0.015, `sft share ${s.get('sft')}`);
});

test('three arms with integer weights 7/2/1 and a zero-weight arm that gets nothing', () => {
  const s = shares(table({ a: 7, b: 2, c: 1, off: 0 }), clients);
  assert.ok(Math.abs(s.get('a')! - 0.7) < 0.02, `a ${s.get('a')}`);
  assert.ok(Math.abs(s.get('b')! - 0.2) < 0.02, `b ${s.get('b')}`);
  assert.ok(Math.abs(s.get('c')! - 0.1) < 0.02, `c ${s.get('c')}`);
  assert.equal(s.get('off'), undefined);
});

test('a client gets the same variant on every request while the table is unchanged', () => {
  const t = table({ grpo: 1, sft: 1 });
  for (const id of clients.slice(0, 2000)) {
    const first = pickVariant(t, id, everyModel)!;
    assert.equal(first.sticky, true);
    assert.equal(first.tableVersion, t.version);
    for (let i = 0; i < 3; i++) assert.equal(pickVariant(t, id, everyModel, () => 0.999)!.variant.name, first.variant.name);
  }
});

test('assignment depends only on (client id, version, weights): an equal table object gives equal picks', () => {
  const a = table({ grpo: 1, sft: 1 });
  const b = table({ grpo: 1, sft: 1 }); // another object, same version 1
  for (const id of clients.slice(0, 1000)) assert.equal(pickVariant(a, id, everyModel)!.variant.name, pickVariant(b, id, everyModel)!.variant.name);
});

test('a new table version re-draws clients: about 2pq of them change arm, none when the version stays', () => {
  const v1 = table({ grpo: 0.9, sft: 0.1 });
  const v2 = table({ grpo: 0.9, sft: 0.1 }, v1);
  assert.equal(v2.version, 2);
  let changed = 0;
  for (const id of clients) {
    if (pickVariant(v1, id, everyModel)!.variant.name !== pickVariant(v2, id, everyModel)!.variant.name) changed++;
  }
  const fraction = changed / clients.length;
  // Independent draws: P(change) = 2 · 0.9 · 0.1 = 0.18.
  assert.ok(Math.abs(fraction - 0.18) < 0.02, `changed ${fraction}`);
});

test('without a client id each request is drawn by weight (empty header counts as none)', () => {
  const t = table({ grpo: 0.9, sft: 0.1 });
  const s = shares(
    t,
    Array.from({ length: 10_000 }, () => undefined),
    mulberry32(7),
  );
  assert.ok(Math.abs(s.get('grpo')! - 0.9) < 0.015, `grpo share ${s.get('grpo')}`);
  const picked = pickVariant(t, '', everyModel, () => 0.95)!;
  assert.equal(picked.sticky, false);
  assert.equal(picked.variant.name, 'sft'); // 0.95 lies in sft's slice [0.9, 1)
  assert.equal(pickVariant(t, undefined, everyModel, () => 0.5)!.variant.name, 'grpo');
});

test('an unavailable model: only its clients move; the others keep their variant', () => {
  const t = table({ a: 1, b: 1, c: 1 });
  const withoutB = (m: string): boolean => m !== 'b';
  let movedFromB = 0;
  for (const id of clients.slice(0, 3000)) {
    const usual = pickVariant(t, id, everyModel)!.variant.name;
    const now = pickVariant(t, id, withoutB)!.variant.name;
    assert.notEqual(now, 'b');
    if (usual === 'b') movedFromB++;
    else assert.equal(now, usual, `client ${id} left healthy arm ${usual}`);
  }
  assert.ok(movedFromB > 800, 'about a third of clients were on b');
});

test('no available weighted variant → null', () => {
  const t = table({ a: 1, b: 0 });
  assert.equal(
    pickVariant(t, 'x', (m) => m === 'b'),
    null,
  );
  assert.equal(
    pickVariant(t, undefined, () => false),
    null,
  );
  const empty = nextTable(null, { variants: [], stickyHeader: 'X-Client-Id' }, { origin: 'default', now: NOW });
  assert.equal(pickVariant(empty, 'x', everyModel), null);
});

test('stickyPoint is in [0, 1), roughly uniform, and differs between versions', () => {
  const buckets = new Array<number>(10).fill(0);
  for (const id of clients) {
    const p = stickyPoint(id, 3);
    assert.ok(p >= 0 && p < 1);
    buckets[Math.floor(p * 10)]!++;
  }
  for (const n of buckets) assert.ok(Math.abs(n - 1000) < 150, `bucket ${n}`);
  assert.notEqual(stickyPoint('client-1', 1), stickyPoint('client-1', 2));
  assert.equal(stickyPoint('client-1', 1), stickyPoint('client-1', 1));
});

test('a point at the very top of the range lands in the last weighted slice', () => {
  const t = table({ a: 0.1, b: 0.2, c: 0.7, z: 0 });
  assert.equal(pickVariant(t, undefined, everyModel, () => 1 - Number.EPSILON)!.variant.name, 'c');
  assert.equal(pickVariant(t, undefined, everyModel, () => 0)!.variant.name, 'a');
});
