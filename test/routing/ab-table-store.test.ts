import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AbTableConflictError, AbTableError } from '../../src/routing/ab-table.ts';
import { AB_TABLE_FILE, AbTableFileError, AbTableStore, type AbTableStoreOptions } from '../../src/routing/ab-table-store.ts';
import { pickVariant } from '../../src/routing/sticky-router.ts';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clinvqa-ab-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function options(dataDir: string, models: string[], extra: Partial<AbTableStoreOptions> = {}): AbTableStoreOptions {
  return { dataDir, isKnownModel: (id) => models.includes(id), defaultModels: () => models, ...extra };
}

const readFile = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, AB_TABLE_FILE), 'utf8'));

test('no saved table: every loaded model at equal weight, version 1, saved', (t) => {
  const dir = tempDir(t);
  const store = AbTableStore.open(options(dir, ['sft', 'grpo']));
  assert.equal(store.current.version, 1);
  assert.equal(store.current.origin, 'default');
  assert.equal(store.current.stickyHeader, 'X-Client-Id');
  assert.deepEqual(store.current.variants, [
    { name: 'grpo', model: 'grpo', weight: 1 },
    { name: 'sft', model: 'sft', weight: 1 },
  ]);
  assert.equal(readFile(dir).table.version, 1);
});

test('no models and no saved table: an empty table in memory only; it fills when models load', (t) => {
  const dir = tempDir(t);
  const store = AbTableStore.open(options(dir, [], { defaultStickyHeader: 'X-Site' }));
  assert.deepEqual(store.current.variants, []);
  assert.equal(fs.existsSync(path.join(dir, AB_TABLE_FILE)), false);
  const next = store.followModels(['m1']);
  assert.equal(next.version, 2);
  assert.equal(next.stickyHeader, 'X-Site');
  assert.equal(readFile(dir).table.variants[0].model, 'm1');
});

test('a change is validated, saved, versioned, and survives a restart', (t) => {
  const dir = tempDir(t);
  const models = ['sft', 'grpo'];
  const store = AbTableStore.open(options(dir, models));
  const v2 = store.replaceFromInput({
    variants: [
      { model: 'grpo', weight: 9 },
      { name: 'control', model: 'sft', weight: 1 },
    ],
    sticky_header: 'X-Site',
  });
  assert.equal(v2.version, 2);
  assert.equal(store.current, v2);
  assert.throws(() => store.replaceFromInput({ variants: [{ model: 'ghost', weight: 1 }] }), AbTableError);
  assert.throws(() => store.replaceFromInput({ variants: [{ model: 'grpo', weight: 0 }] }), AbTableError);
  assert.equal(store.current, v2, 'rejected changes leave the table in effect');

  const reopened = AbTableStore.open(options(dir, models));
  assert.deepEqual(reopened.current, v2);
  // Same version and weights after the restart → the same sticky assignments.
  for (const id of ['a', 'b', 'c', 'd']) {
    assert.equal(pickVariant(reopened.current, id, () => true)!.variant.name, pickVariant(v2, id, () => true)!.variant.name);
  }
  assert.equal(reopened.replaceFromInput({ variants: [{ model: 'sft', weight: 1 }] }).version, 3);
});

test('an admin table is kept at boot even if its models are gone; a default one follows the models', (t) => {
  const dir = tempDir(t);
  const logs: string[] = [];
  AbTableStore.open(options(dir, ['a', 'b'])).replaceFromInput({
    variants: [
      { model: 'a', weight: 1 },
      { model: 'b', weight: 1 },
    ],
  });
  const reopened = AbTableStore.open(options(dir, ['a'], { log: (m) => logs.push(m) }));
  assert.equal(reopened.current.version, 2);
  assert.equal(reopened.current.variants.length, 2);
  assert.match(logs.join('\n'), /not loaded/);
  assert.equal(reopened.followModels(['a']), reopened.current, 'followModels leaves admin tables alone');

  const dir2 = tempDir(t);
  AbTableStore.open(options(dir2, ['a', 'b']));
  const grown = AbTableStore.open(options(dir2, ['a', 'b', 'c']));
  assert.equal(grown.current.version, 2);
  assert.deepEqual(
    grown.current.variants.map((v) => v.model),
    ['a', 'b', 'c'],
  );
  assert.equal(AbTableStore.open(options(dir2, ['a', 'b', 'c'])).current.version, 2, 'unchanged models: same version');
});

test('a write that fails leaves the old table in effect and on disk, and no temp file', (t) => {
  const dir = tempDir(t);
  const store = AbTableStore.open(options(dir, ['a', 'b']));
  const before = store.current;
  const saved = fs.readFileSync(path.join(dir, AB_TABLE_FILE), 'utf8');
  // Replace the file by a directory: the rename onto it fails.
  fs.rmSync(path.join(dir, AB_TABLE_FILE));
  fs.mkdirSync(path.join(dir, AB_TABLE_FILE));
  assert.throws(() => store.replaceFromInput({ variants: [{ model: 'a', weight: 1 }] }));
  assert.equal(store.current, before);
  assert.deepEqual(fs.readdirSync(dir), [AB_TABLE_FILE]);
  fs.rmSync(path.join(dir, AB_TABLE_FILE), { recursive: true });
  fs.writeFileSync(path.join(dir, AB_TABLE_FILE), saved);
  assert.equal(store.replaceFromInput({ variants: [{ model: 'a', weight: 1 }] }).version, 2);
});

test('boot ignores a temp file left by a crash, and refuses a corrupt table rather than replace it', (t) => {
  const dir = tempDir(t);
  AbTableStore.open(options(dir, ['a'])).replaceFromInput({ variants: [{ model: 'a', weight: 5 }] });
  const leftover = path.join(dir, `${AB_TABLE_FILE}.tmp-999-1`);
  fs.writeFileSync(leftover, '{"format":1,"table":{"ver');
  const store = AbTableStore.open(options(dir, ['a']));
  assert.equal(store.current.version, 2);
  assert.equal(store.current.variants[0]!.weight, 5);
  assert.equal(fs.existsSync(leftover), false);

  fs.writeFileSync(path.join(dir, AB_TABLE_FILE), '{"format":1,"table":{"ver');
  assert.throws(() => AbTableStore.open(options(dir, ['a'])), AbTableFileError);
  fs.writeFileSync(path.join(dir, AB_TABLE_FILE), JSON.stringify({ format: 1, table: { version: 0, variants: [], sticky_header: 'x' } }));
  assert.throws(() => AbTableStore.open(options(dir, ['a'])), AbTableFileError);
  assert.match(fs.readFileSync(path.join(dir, AB_TABLE_FILE), 'utf8'), /"version":0/, 'the bad file is left for a human');
});

test('promote, promote again, roll back twice: each step atomic, saved, and undoable in order', (t) => {
  const dir = tempDir(t);
  const models = ['sft', 'grpo', 'ft1'];
  const store = AbTableStore.open(options(dir, models));
  const base = store.replaceFromInput({
    variants: [
      { name: 'control', model: 'sft', weight: 1 },
      { model: 'grpo', weight: 1 },
    ],
  });
  const p1 = store.promote('grpo');
  assert.equal(p1.promoted, 'grpo');
  assert.deepEqual(
    p1.variants.map((v) => v.weight),
    [0, 1],
  );
  assert.equal(store.promote('grpo'), p1, 'promoting the promoted model changes nothing');
  const p2 = store.promote('ft1');
  assert.deepEqual(
    p2.variants.map((v) => [v.model, v.weight]),
    [
      ['sft', 0],
      ['grpo', 0],
      ['ft1', 1],
    ],
  );
  assert.throws(() => store.rollback('grpo'), AbTableConflictError);
  assert.throws(() => store.promote('ghost'), AbTableError);

  const reopened = AbTableStore.open(options(dir, models));
  const r1 = reopened.rollback('ft1');
  assert.equal(r1.promoted, 'grpo');
  assert.deepEqual(r1.variants, p1.variants);
  const r2 = reopened.rollback('grpo');
  assert.equal(r2.promoted, null);
  assert.deepEqual(r2.variants, base.variants);
  assert.equal(r2.version, p2.version + 2);
  assert.throws(() => reopened.rollback('grpo'), AbTableConflictError);
});

test('rollback to a table whose model was unloaded is refused, the promotion stays', (t) => {
  const dir = tempDir(t);
  const models = ['a', 'b'];
  const store = AbTableStore.open(options(dir, models));
  store.promote('b');
  models.splice(0, 1); // 'a' unloaded
  const promoted = store.current;
  assert.throws(
    () => store.rollback('b'),
    (e: unknown) => e instanceof AbTableError && e.kind === 'invalid',
  );
  assert.equal(store.current, promoted);
});

test('a canary takes its share of the traffic', (t) => {
  const dir = tempDir(t);
  const store = AbTableStore.open(options(dir, ['a', 'b', 'new']));
  store.replaceFromInput({
    variants: [
      { model: 'a', weight: 1 },
      { model: 'b', weight: 1 },
    ],
  });
  const table = store.setCanary('new', 0.2);
  assert.equal(table.origin, 'canary');
  let onCanary = 0;
  for (let i = 0; i < 5000; i++) if (pickVariant(table, `c${i}`, () => true)!.variant.model === 'new') onCanary++;
  assert.ok(Math.abs(onCanary / 5000 - 0.2) < 0.03, `canary share ${onCanary / 5000}`);
});

test('changes racing with many in-flight picks: every pick sees one whole, valid, saved table', async (t) => {
  const dir = tempDir(t);
  const models = ['a', 'b', 'c'];
  const store = AbTableStore.open(options(dir, models));
  // Alternate between two shapes; each version's variants are recorded as they are committed.
  const shapes = [
    {
      variants: [
        { model: 'a', weight: 1 },
        { model: 'b', weight: 3 },
      ],
    },
    {
      variants: [
        { name: 'x', model: 'c', weight: 2 },
        { name: 'y', model: 'a', weight: 0 },
      ],
    },
  ];
  const committed = new Map<number, string>([[store.current.version, JSON.stringify(store.current.variants)]]);
  let changes = 0;
  const changer = (async () => {
    for (let i = 0; i < 100; i++) {
      const table = store.replaceFromInput(shapes[i % 2]);
      committed.set(table.version, JSON.stringify(table.variants));
      changes++;
      await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  // 2,000 "requests": each takes the table once, yields (its inference), then picks from that table.
  const requests = Array.from({ length: 2000 }, async (_, i) => {
    for (let k = 0; k < i % 40; k++) await new Promise((resolve) => setImmediate(resolve)); // arrive over time
    const table = store.current;
    await new Promise((resolve) => setTimeout(resolve, i % 7));
    const picked = pickVariant(table, `client-${i % 50}`, (m) => models.includes(m))!;
    assert.ok(picked, 'a valid table always yields a variant');
    assert.ok(table.variants.includes(picked.variant), 'the variant belongs to the table the request took');
    assert.ok(picked.variant.weight > 0);
    return { version: picked.tableVersion, variants: JSON.stringify(table.variants) };
  });
  const seen = await Promise.all(requests);
  await changer;
  assert.equal(changes, 100);
  const versions = new Set(seen.map((s) => s.version));
  assert.ok(versions.size > 10, `requests saw ${versions.size} table versions`);
  for (const s of seen) assert.equal(s.variants, committed.get(s.version), `version ${s.version} is exactly what was committed`);
  assert.deepEqual(AbTableStore.open(options(dir, models)).current, store.current, 'the file holds the last table');
});
