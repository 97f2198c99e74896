// One suite, two homes of the A/B table: the JSON file (embedded) and Postgres (cluster). Then what
// only the shared database can do: two replicas changing the table at once lose neither change, and
// a replica picks up another's change by re-reading.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AbTableConflictError, AbTableError } from '../../src/routing/ab-table.ts';
import { AbTableStore, type AbTableBackend } from '../../src/routing/ab-table-store.ts';
import { PostgresAbTableStore, abTableHistory } from '../../src/routing/ab-table-store.postgres.ts';
import { pickVariant } from '../../src/routing/sticky-router.ts';
import { storeBackends } from '../helpers/store-backends.ts';

const { backends } = storeBackends();

for (const backend of backends) {
  describe(`A/B table store (${backend.name})`, () => {
    const open = async (t: { after(fn: () => Promise<void>): void }, models: string[]) => {
      const place = await backend.fresh();
      t.after(() => place.cleanup());
      const options = { isKnownModel: (id: string) => models.includes(id), defaultModels: () => models };
      const make = async (): Promise<AbTableBackend> =>
        place.pool ? PostgresAbTableStore.open(place.pool, options) : AbTableStore.open({ dataDir: place.dataDir, ...options });
      return { store: await make(), make, place };
    };

    test('default table, then changes validated, versioned and kept across reopening', async (t) => {
      const models = ['sft', 'grpo'];
      const { store, make } = await open(t, models);
      assert.equal(store.current.version, 1);
      assert.equal(store.current.origin, 'default');
      assert.deepEqual(store.current.variants, [
        { name: 'grpo', model: 'grpo', weight: 1 },
        { name: 'sft', model: 'sft', weight: 1 },
      ]);
      const v2 = await store.replaceFromInput({
        variants: [
          { model: 'grpo', weight: 9 },
          { name: 'control', model: 'sft', weight: 1 },
        ],
        sticky_header: 'X-Site',
      });
      assert.equal(v2.version, 2);
      assert.equal(store.current, v2);
      await assert.rejects(async () => store.replaceFromInput({ variants: [{ model: 'ghost', weight: 1 }] }), AbTableError);
      assert.equal(store.current, v2, 'rejected changes leave the table in effect');
      const reopened = await make();
      assert.deepEqual(reopened.current, v2);
      for (const id of ['a', 'b', 'c', 'd'])
        assert.equal(pickVariant(reopened.current, id, () => true)!.variant.name, pickVariant(v2, id, () => true)!.variant.name);
      assert.equal((await reopened.replaceFromInput({ variants: [{ model: 'sft', weight: 1 }] })).version, 3);
    });

    test('promote, promote again, roll back twice, across a reopen', async (t) => {
      const { store, make } = await open(t, ['sft', 'grpo', 'ft1']);
      const base = await store.replaceFromInput({
        variants: [
          { name: 'control', model: 'sft', weight: 1 },
          { model: 'grpo', weight: 1 },
        ],
      });
      const p1 = await store.promote('grpo');
      assert.deepEqual(
        p1.variants.map((v) => v.weight),
        [0, 1],
      );
      assert.equal((await store.promote('grpo')).version, p1.version, 'promoting the promoted model changes nothing');
      const p2 = await store.promote('ft1');
      assert.deepEqual(
        p2.variants.map((v) => [v.model, v.weight]),
        [
          ['sft', 0],
          ['grpo', 0],
          ['ft1', 1],
        ],
      );
      await assert.rejects(async () => store.rollback('grpo'), AbTableConflictError);
      await assert.rejects(async () => store.promote('ghost'), AbTableError);
      const reopened = await make();
      const r1 = await reopened.rollback('ft1');
      assert.equal(r1.promoted, 'grpo');
      assert.deepEqual(r1.variants, p1.variants);
      const r2 = await reopened.rollback('grpo');
      assert.equal(r2.promoted, null);
      assert.deepEqual(r2.variants, base.variants);
      assert.equal(r2.version, p2.version + 2);
    });

    test('a canary takes its share; a default table follows the loaded models', async (t) => {
      const models = ['a', 'b', 'new'];
      const { store } = await open(t, models);
      const followed = await store.followModels(['a', 'b']);
      assert.deepEqual(
        followed.variants.map((v) => v.model),
        ['a', 'b'],
      );
      const table = await store.setCanary('new', 0.2);
      assert.equal(table.origin, 'canary');
      assert.ok(Math.abs(table.variants.find((v) => v.model === 'new')!.weight - 0.5) < 1e-9);
      assert.equal((await store.followModels(['a'])).version, table.version, 'a table that is not the default is left alone');
    });
  });
}

describe('A/B table shared by replicas (postgres)', () => {
  const backend = backends.find((b) => b.name === 'postgres')!;
  test('concurrent changes on two replicas all land, in distinct versions; each sees the other after refresh', async (t) => {
    const place = await backend.fresh();
    t.after(() => place.cleanup());
    const models = ['a', 'b', 'c'];
    const options = { isKnownModel: (id: string) => models.includes(id), defaultModels: () => models };
    const [one, two] = [await PostgresAbTableStore.open(place.pool!, options), await PostgresAbTableStore.open(place.pool!, options)];
    assert.equal(one.current.version, 1);
    assert.equal(two.current.version, 1, 'the second replica adopts the stored default rather than writing its own');
    const changes = await Promise.all([
      one.replaceFromInput({ variants: [{ model: 'a', weight: 1 }] }),
      two.promote('b'),
      one.setCanary('c', 0.1),
      two.replaceFromInput({
        variants: [
          { model: 'a', weight: 2 },
          { model: 'b', weight: 1 },
        ],
      }),
    ]);
    assert.deepEqual(new Set(changes.map((c) => c.version)).size, 4, 'no two changes got the same version');
    const history = await abTableHistory(place.pool!);
    assert.deepEqual(
      history.map((h) => h.version),
      [5, 4, 3, 2, 1],
    );
    await one.refresh();
    await two.refresh();
    assert.equal(one.current.version, 5);
    assert.deepEqual(one.current, two.current);
  });
});
