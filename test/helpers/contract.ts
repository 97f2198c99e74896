// Checks an HTTP response against openapi.yaml: a declared status, the declared media type, and
// a body matching the schema (each SSE event against x-event-schema for streams).
import assert from 'node:assert/strict';
import type { Response } from 'supertest';
import { OpenApiSpec } from '../../src/http/openapi/spec.ts';
import type { Schema } from '../../src/http/openapi/schema-validator.ts';

export const spec = OpenApiSpec.load();

export function assertContract(method: string, urlPath: string, res: Response): void {
  const { found } = spec.match(method, urlPath.split('?')[0]!);
  assert.ok(found, `${method} ${urlPath} is not in openapi.yaml`);
  const responses = (found.operation.raw.responses ?? {}) as Record<string, unknown>;
  assert.ok(String(res.status) in responses || 'default' in responses, `${method} ${urlPath}: status ${res.status} is not declared`);
  const mediaType = String(res.headers['content-type'] ?? '')
    .split(';')[0]!
    .trim();
  if (res.status === 204) return;
  const response = spec.deref<{ content?: Record<string, { schema?: Schema; 'x-event-schema'?: Schema }> }>(responses[String(res.status)] ?? responses.default);
  const media = response.content?.[mediaType];
  assert.ok(media, `${method} ${urlPath} ${res.status}: media type "${mediaType}" is not declared (${Object.keys(response.content ?? {}).join(', ')})`);
  if (mediaType === 'text/event-stream') {
    const events = sseEvents(res.text);
    assert.equal(events.at(-1), '[DONE]', 'a stream ends with data: [DONE]');
    for (const event of events.slice(0, -1)) {
      const issues = spec.validator.validate(media['x-event-schema']!, JSON.parse(event));
      assert.deepEqual(issues, [], `SSE event breaks the contract: ${event}`);
    }
    return;
  }
  if (media.schema === undefined) return;
  const body = mediaType.endsWith('json') ? JSON.parse(res.text) : res.text;
  const issues = spec.validator.validate(media.schema, body);
  assert.deepEqual(issues, [], `${method} ${urlPath} ${res.status} body breaks the contract: ${res.text.slice(0, 500)}`);
}

/** The `data:` payloads of an SSE body, in order. */
export function sseEvents(text: string): string[] {
  return text
    .split('\n\n')
    .map((block) =>
      block
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n'),
    )
    .filter((d) => d !== '');
}

/**
 * An error with this status and code that matches the contract, in the route's error format: a
 * problem document, or OpenAI's `{"error": {...}}` on the routes marked `x-error-format: openai`.
 */
export function assertProblem(method: string, urlPath: string, res: Response, status: number, code?: string): void {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${res.text.slice(0, 300)}`);
  if (spec.errorFormatOf(urlPath.split('?')[0]!) === 'openai') {
    assert.match(String(res.headers['content-type']), /^application\/json/);
    const body = JSON.parse(res.text) as { error: { code: string; message: string } };
    if (code !== undefined) assert.equal(body.error.code, code, res.text);
    assert.ok(body.error.message.length > 0, res.text);
  } else {
    assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
    const body = JSON.parse(res.text) as { code: string; status: number };
    if (code !== undefined) assert.equal(body.code, code, res.text);
    assert.equal(body.status, status);
  }
  assertContract(method, urlPath, res);
}
