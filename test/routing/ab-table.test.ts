import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AbTableError,
  canarySpec,
  checkAbTableSpec,
  defaultSpec,
  nextTable,
  parseAbTableInput,
  promotedSpec,
  toAbTableJson,
} from '../../src/routing/ab-table.ts';

const known =
  (...ids: string[]) =>
  (id: string): boolean =>
    ids.includes(id);

/** The error's kind and its problems as "path: message" lines. */
function problemsOf(fn: () => unknown): { kind: string; problems: readonly string[] } {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof AbTableError, String(error));
    return { kind: error.kind, problems: error.problems.map((p) => `${p.path}: ${p.message}`) };
  }
  assert.fail('expected an AbTableError');
}

test('parses the openapi AbTableInput: names default to the model id, header defaults to X-Client-Id', () => {
  const spec = parseAbTableInput({
    variants: [
      { model: 'clinvqa-grpo', weight: 9 },
      { name: 'control', model: 'clinvqa-sft', weight: 1 },
    ],
  });
  assert.deepEqual(spec, {
    variants: [
      { name: 'clinvqa-grpo', model: 'clinvqa-grpo', weight: 9 },
      { name: 'control', model: 'clinvqa-sft', weight: 1 },
    ],
    stickyHeader: 'X-Client-Id',
  });
  assert.ok(Object.isFrozen(spec) && Object.isFrozen(spec.variants) && Object.isFrozen(spec.variants[0]));
  assert.equal(parseAbTableInput({ variants: [{ model: 'm', weight: 1 }], sticky_header: 'X-Patient-Site' }).stickyHeader, 'X-Patient-Site');
});

test('malformed bodies list every problem', () => {
  assert.equal(problemsOf(() => parseAbTableInput(null)).kind, 'malformed');
  assert.equal(problemsOf(() => parseAbTableInput([])).kind, 'malformed');
  const { kind, problems } = problemsOf(() =>
    parseAbTableInput({
      variants: [
        { model: 'ok', weight: -1 },
        { model: '../etc', weight: 1 },
        { model: 'm', weight: Number.POSITIVE_INFINITY },
        { model: 'm2', weight: '1' },
        { model: 'm3', weight: 1, extra: true },
        { model: 'm4', weight: 1, name: 'bad name' },
        'x',
      ],
      sticky_header: 'X Client',
      other: 1,
    }),
  );
  assert.equal(kind, 'malformed');
  assert.deepEqual(problems.map((p) => p.split(':')[0]).sort(), [
    '/other',
    '/sticky_header',
    '/variants/0/weight',
    '/variants/1/model',
    '/variants/2/weight',
    '/variants/3/weight',
    '/variants/4/extra',
    '/variants/5/name',
    '/variants/6',
  ]);
  assert.equal(problemsOf(() => parseAbTableInput({ variants: [] })).problems.length, 1);
  assert.equal(problemsOf(() => parseAbTableInput({ variants: Array.from({ length: 17 }, (_, i) => ({ model: `m${i}`, weight: 1 })) })).kind, 'malformed');
  assert.match(problemsOf(() => parseAbTableInput({ variants: [{ model: 'm', weight: 1 }], sticky_header: 'Authorization' })).problems[0]!, /credential/);
  assert.equal(problemsOf(() => parseAbTableInput({ variants: [{ model: 'm', weight: 1_000_001 }] })).kind, 'malformed');
});

test('semantic checks: a positive weight, unique names and models, loaded models, "override" reserved', () => {
  const parse = (variants: unknown[]) => parseAbTableInput({ variants });
  assert.doesNotThrow(() =>
    checkAbTableSpec(
      parse([
        { model: 'a', weight: 0 },
        { model: 'b', weight: 2 },
      ]),
      known('a', 'b'),
    ),
  );
  const cases: [unknown[], RegExp][] = [
    [
      [
        { model: 'a', weight: 0 },
        { model: 'b', weight: 0 },
      ],
      /weight above 0/,
    ],
    [
      [
        { model: 'a', weight: 1 },
        { model: 'a', weight: 1, name: 'again' },
      ],
      /model "a" appears in two/,
    ],
    [
      [
        { name: 'x', model: 'a', weight: 1 },
        { name: 'x', model: 'b', weight: 1 },
      ],
      /name "x" appears twice/,
    ],
    [
      [
        { model: 'a', weight: 1 },
        { model: 'ghost', weight: 1 },
      ],
      /^\/variants\/1\/model: model "ghost" is not loaded/,
    ],
    [[{ model: 'a', weight: 1, name: 'override' }], /reserved/],
  ];
  for (const [variants, message] of cases) {
    const { kind, problems } = problemsOf(() => checkAbTableSpec(parse(variants), known('a', 'b')));
    assert.equal(kind, 'invalid');
    assert.match(problems.join('\n'), message);
  }
});

test('nextTable numbers versions from 1 and freezes the table', () => {
  const now = new Date('2025-03-01T12:00:00Z');
  const t1 = nextTable(null, defaultSpec(['b', 'a', 'b']), { origin: 'default', now });
  assert.equal(t1.version, 1);
  assert.deepEqual(
    t1.variants.map((v) => v.model),
    ['a', 'b'],
  );
  const t2 = nextTable(t1, t1, { origin: 'admin', now });
  assert.equal(t2.version, 2);
  assert.ok(Object.isFrozen(t2) && Object.isFrozen(t2.variants) && Object.isFrozen(t2.variants[0]));
  assert.deepEqual(toAbTableJson(t2), {
    version: 2,
    variants: [
      { name: 'a', model: 'a', weight: 1 },
      { name: 'b', model: 'b', weight: 1 },
    ],
    sticky_header: 'X-Client-Id',
    updated_at: '2025-03-01T12:00:00.000Z',
    promoted: null,
  });
});

test('promotion sends all weight to one model and keeps the other names at 0', () => {
  const spec = parseAbTableInput({
    variants: [
      { name: 'control', model: 'sft', weight: 3 },
      { model: 'grpo', weight: 1 },
    ],
  });
  assert.deepEqual(promotedSpec(spec, 'grpo').variants, [
    { name: 'control', model: 'sft', weight: 0 },
    { name: 'grpo', model: 'grpo', weight: 1 },
  ]);
  const added = promotedSpec(spec, 'control'); // a model whose id collides with a variant name
  assert.deepEqual(added.variants.at(-1), { name: 'control-2', model: 'control', weight: 1 });
  assert.doesNotThrow(() => checkAbTableSpec(added, () => true));
});

test('a canary gets its share and the others keep their ratios', () => {
  const spec = parseAbTableInput({
    variants: [
      { model: 'sft', weight: 3 },
      { model: 'grpo', weight: 1 },
    ],
  });
  const withCanary = canarySpec(spec, 'grpo-ft1', 0.1);
  const total = withCanary.variants.reduce((s, v) => s + v.weight, 0);
  const weightOf = (m: string) => withCanary.variants.find((v) => v.model === m)!.weight;
  assert.ok(Math.abs(weightOf('grpo-ft1') / total - 0.1) < 1e-12);
  assert.equal(weightOf('sft') / weightOf('grpo'), 3);
  const reweighted = canarySpec(withCanary, 'grpo-ft1', 0.5);
  assert.equal(reweighted.variants.length, 3);
  assert.ok(Math.abs(reweighted.variants[2]!.weight - 4) < 1e-12);
  assert.equal(problemsOf(() => canarySpec(spec, 'x', 1)).kind, 'invalid');
  assert.equal(problemsOf(() => canarySpec(parseAbTableInput({ variants: [{ model: 'x', weight: 1 }] }), 'x', 0.2)).kind, 'invalid');
});
