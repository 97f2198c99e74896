import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OpenApiSpec } from '../../../src/http/openapi/spec.ts';

const spec = OpenApiSpec.load();

test('every operation of openapi.yaml compiles, and every authenticated one names its roles', () => {
  const operations = spec.operations();
  assert.ok(operations.length >= 14);
  for (const op of operations) {
    if (op.authenticated) assert.ok(op.roles.length > 0, `${op.method} ${op.template} has no x-roles`);
    assert.ok(op.raw.responses, `${op.operationId} declares responses`);
  }
  const publicOps = operations
    .filter((o) => !o.authenticated)
    .map((o) => o.template)
    .sort();
  assert.deepEqual(publicOps, ['/healthz', '/metrics', '/readyz']);
  assert.ok(operations.filter((o) => o.template.startsWith('/admin')).every((o) => o.roles.join() === 'admin'));
});

test('match: templates with parameters, 405 vs 404, HEAD as GET', () => {
  const m = spec.match('POST', '/admin/models/clinvqa-grpo/promote');
  assert.equal(m.found?.operation.operationId, 'promoteModel');
  assert.deepEqual(m.found?.params, { id: 'clinvqa-grpo' });
  assert.deepEqual(spec.match('PATCH', '/v1/vqa'), { pathExists: true });
  assert.deepEqual(spec.match('GET', '/v1/nothing'), { pathExists: false });
  assert.equal(spec.match('HEAD', '/healthz').found?.operation.operationId, 'liveness');
});

test('request bodies: VQA accepts multipart and JSON; schemas resolve through $ref', () => {
  const vqa = spec.match('POST', '/v1/vqa').found!.operation;
  assert.deepEqual([...vqa.requestBodies.keys()].sort(), ['application/json', 'multipart/form-data']);
  const json = vqa.requestBodies.get('application/json')!;
  assert.deepEqual(spec.validator.validate(json, { image: 'aGk=', question: 'q' }), []);
  assert.equal(spec.validator.validate(json, { image: 'aGk=', question: 'q', max_tokens: 0 })[0]?.path, '/max_tokens');
  assert.ok(vqa.headerParams.has('x-client-id'));
});
