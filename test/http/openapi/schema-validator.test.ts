import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertKnownKeywords, SchemaValidator, type Schema } from '../../../src/http/openapi/schema-validator.ts';

const defs: Record<string, Schema> = {
  '#/Id': { type: 'string', pattern: '^[a-z]+$' },
};
const v = new SchemaValidator((ref) => defs[ref]!);
const paths = (schema: Schema, value: unknown) => v.validate(schema, value).map((i) => `${i.path} ${i.message}`);

test('types, including integer vs number and type lists with null', () => {
  assert.deepEqual(paths({ type: 'integer' }, 3), []);
  assert.deepEqual(paths({ type: 'integer' }, 3.5), ['/ must be integer']);
  assert.deepEqual(paths({ type: 'number' }, 3), []);
  assert.deepEqual(paths({ type: ['string', 'null'] }, null), []);
  assert.deepEqual(paths({ type: 'object' }, []), ['/ must be object']);
  assert.deepEqual(paths({ type: 'array' }, {}), ['/ must be array']);
});

test('strings count code points; pattern is unanchored ECMA-262', () => {
  assert.deepEqual(paths({ type: 'string', maxLength: 2 }, '🩻🩻'), []);
  assert.deepEqual(paths({ type: 'string', maxLength: 1 }, '🩻🩻'), ['/ must have at most 1 characters']);
  assert.deepEqual(paths({ type: 'string', minLength: 3 }, '🩻🩻'), ['/ must have at least 3 characters']);
  assert.deepEqual(paths({ type: 'string', minLength: 3, maxLength: 3 }, '🩻a🩻'), []);
  assert.deepEqual(paths({ type: 'string', minLength: 1, maxLength: 10 }, 'x'.repeat(11)), ['/ must have at most 10 characters']);
  assert.deepEqual(paths({ type: 'string', pattern: '\\S' }, '  x '), []);
  assert.deepEqual(paths({ type: 'string', pattern: '\\S' }, '   '), ['/ must match the pattern \\S']);
});

test('numbers: minimum, maximum, exclusiveMinimum', () => {
  assert.deepEqual(paths({ type: 'number', exclusiveMinimum: 0, maximum: 1 }, 0), ['/ must be > 0']);
  assert.deepEqual(paths({ type: 'number', minimum: 0, maximum: 1 }, 1.5), ['/ must be <= 1']);
});

test('objects: required, additionalProperties false, nested paths with pointer escaping, $ref', () => {
  const schema: Schema = {
    type: 'object',
    required: ['id', 'items'],
    properties: { id: { $ref: '#/Id' }, items: { type: 'array', maxItems: 2, items: { type: 'integer' } } },
    additionalProperties: false,
  };
  assert.deepEqual(paths(schema, { id: 'abc', items: [1, 2] }), []);
  assert.deepEqual(paths(schema, { id: 'ABC', items: [1, 'x'], 'a/b': 1 }), [
    '/id must match the pattern ^[a-z]+$',
    '/items/1 must be integer',
    '/a~1b is not an allowed property',
  ]);
  assert.deepEqual(paths(schema, {}), ['/id is required', '/items is required']);
  assert.deepEqual(paths(schema, { id: 'a', items: [1, 2, 3] }), ['/items must have at most 2 items']);
});

test('const, enum, anyOf, oneOf (exactly one)', () => {
  assert.deepEqual(paths({ const: 'auto' }, 'auto'), []);
  assert.deepEqual(paths({ enum: ['stop', 'length'] }, 'other'), ['/ must be one of "stop", "length"']);
  const anyOf: Schema = { anyOf: [{ type: 'string' }, { type: 'null' }] };
  assert.deepEqual(paths(anyOf, null), []);
  assert.equal(paths(anyOf, 3).length, 1);
  const oneOf: Schema = {
    oneOf: [
      { type: 'object', required: ['a'] },
      { type: 'object', required: ['b'] },
    ],
  };
  assert.deepEqual(paths(oneOf, { a: 1 }), []);
  assert.deepEqual(paths(oneOf, { a: 1, b: 2 }), ['/ matches more than one allowed shape']);
  assert.deepEqual(paths(oneOf, { c: 1 }), ['/a is required']);
});

test("a failed anyOf/oneOf reports the branch of the value's own type, not the first one listed", () => {
  // Each branch fails with one issue; the array branch's is the real reason.
  const content: Schema = { anyOf: [{ type: 'string' }, { type: 'null' }, { type: 'array', maxItems: 2, items: { type: 'integer' } }] };
  assert.deepEqual(paths(content, [1, 2, 3]), ['/ must have at most 2 items']);
  // Through $refs, and by issue count among branches of the right type.
  const refs = new SchemaValidator((ref) => (({ '#/S': { type: 'string' }, '#/O': { type: 'object', required: ['a', 'b'] } }) as Record<string, Schema>)[ref]!);
  assert.deepEqual(
    refs.validate({ oneOf: [{ $ref: '#/S' }, { $ref: '#/O' }] }, { a: 1 }).map((i) => `${i.path} ${i.message}`),
    ['/b is required'],
  );
  // No branch of its type: still the closest one.
  assert.deepEqual(paths(content, 3.5), ['/ must be string']);
});

test('a keyword the validator does not implement is refused up front', () => {
  assertKnownKeywords({ type: 'object', properties: { a: { type: 'string', 'x-note': 1 } } }, 'ok');
  assert.throws(() => assertKnownKeywords({ type: 'object', properties: { a: { uniqueItems: true } } }, 'here'), /"uniqueItems" is not supported/);
});
