// openapi.yaml, loaded once: operation lookup by method and concrete path, `$ref` resolution, and
// the per-operation facts the middleware needs (roles, accepted media types, body schemas). The
// same object backs run-time request validation and the tests' response checks.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { formToObject } from './form-fields.ts';
import { assertKnownKeywords, SchemaValidator, type Schema, type SchemaIssue } from './schema-validator.ts';

export const DEFAULT_SPEC_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../openapi.yaml');

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

type Json = { [key: string]: unknown };

export interface Operation {
  readonly operationId: string;
  readonly method: string;
  /** Path template as written in the spec, e.g. `/v1/models/{id}`; also the metrics route label. */
  readonly template: string;
  /** false for `security: []` routes (health, readiness, metrics). */
  readonly authenticated: boolean;
  /** Roles from `x-roles`; empty = any authenticated caller. */
  readonly roles: readonly string[];
  /**
   * Media type → the schema the middleware checks before the route runs. A media type marked
   * `x-parsed-by-route: true` maps to `true` here (only its Content-Type is checked up front): its
   * route parses the body itself, with its own limits, and then calls `checkParsedForm`.
   */
  readonly requestBodies: ReadonlyMap<string, Schema>;
  /** Media type → the real schema of bodies marked `x-parsed-by-route`. */
  readonly routeParsedBodies: ReadonlyMap<string, Schema>;
  /**
   * A multipart body the route has parsed, checked against its `x-parsed-by-route` schema: text
   * fields as sent (coerced by schema type; parts whose `encoding` is application/json are parsed),
   * file parts by field name (a repeated part becomes an array). Empty when it conforms.
   */
  checkParsedForm(fields: Record<string, unknown>, fileParts: readonly string[]): SchemaIssue[];
  readonly bodyRequired: boolean;
  /** Header parameters (lower-case name → schema). */
  readonly headerParams: ReadonlyMap<string, Schema>;
  /** Path parameters (name → schema), from the path item and the operation. */
  readonly pathParams: ReadonlyMap<string, Schema>;
  readonly raw: Json;
}

export interface OperationMatch {
  operation: Operation;
  params: Record<string, string>;
}

/**
 * How a route's errors are shaped: RFC 7807 problem documents, or OpenAI's `{"error": {...}}` on
 * the OpenAI-compatible routes (path items marked `x-error-format: openai`), so OpenAI SDKs show
 * the real message.
 */
export type ErrorFormat = 'problem' | 'openai';

interface CompiledPath {
  template: string;
  regex: RegExp;
  names: string[];
  operations: Map<string, Operation>;
  errorFormat: ErrorFormat;
}

export class OpenApiSpec {
  readonly validator: SchemaValidator;
  private readonly paths: CompiledPath[] = [];

  constructor(readonly document: Json) {
    this.validator = new SchemaValidator((ref) => this.resolveRef(ref) as Schema);
    const globalSecurity = document.security as unknown[] | undefined;
    for (const [template, item] of Object.entries((document.paths ?? {}) as Record<string, Json>)) {
      const names: string[] = [];
      const source = template
        .split('/')
        .map((segment) => {
          const param = /^\{([A-Za-z0-9_]+)\}$/.exec(segment);
          if (!param) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
          names.push(param[1]!);
          return '([^/]+)';
        })
        .join('/');
      const operations = new Map<string, Operation>();
      for (const method of METHODS) {
        const op = item[method] as Json | undefined;
        if (!op) continue;
        operations.set(method.toUpperCase(), this.compileOperation(method.toUpperCase(), template, op, globalSecurity, (item.parameters ?? []) as unknown[]));
      }
      const errorFormat = item['x-error-format'] ?? 'problem';
      if (errorFormat !== 'problem' && errorFormat !== 'openai') throw new Error(`${template}: x-error-format must be problem or openai`);
      this.paths.push({ template, regex: new RegExp(`^${source}$`), names, operations, errorFormat });
    }
  }

  static load(file = DEFAULT_SPEC_PATH): OpenApiSpec {
    return new OpenApiSpec(parse(readFileSync(file, 'utf8')) as Json);
  }

  /** The operation for a method and concrete path; `pathExists` tells 404 from 405. */
  match(method: string, urlPath: string): { found?: OperationMatch; pathExists: boolean } {
    let pathExists = false;
    for (const compiled of this.paths) {
      const m = compiled.regex.exec(urlPath);
      if (!m) continue;
      pathExists = true;
      const operation = compiled.operations.get(method.toUpperCase() === 'HEAD' ? 'GET' : method.toUpperCase());
      if (!operation) continue;
      const params: Record<string, string> = {};
      compiled.names.forEach((name, i) => {
        params[name] = safeDecode(m[i + 1]!);
      });
      return { found: { operation, params }, pathExists };
    }
    return { pathExists };
  }

  /** The error format of the path item a concrete path falls under, whatever the method; RFC 7807 outside the contract. */
  errorFormatOf(urlPath: string): ErrorFormat {
    return this.paths.find((p) => p.regex.test(urlPath))?.errorFormat ?? 'problem';
  }

  /** Every operation, for tests that walk the whole contract. */
  operations(): Operation[] {
    return this.paths.flatMap((p) => [...p.operations.values()]);
  }

  resolveRef(ref: string): unknown {
    if (!ref.startsWith('#/')) throw new Error(`only local $refs are supported, got ${ref}`);
    let node: unknown = this.document;
    for (const raw of ref.slice(2).split('/')) {
      const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
      node = (node as Json | undefined)?.[key];
      if (node === undefined) throw new Error(`unresolvable $ref ${ref}`);
    }
    return node;
  }

  /** Follows `$ref` chains at the top of a node (responses, parameters). */
  deref<T = Json>(node: unknown): T {
    let current = node as Json;
    while (current && typeof current.$ref === 'string') current = this.resolveRef(current.$ref) as Json;
    return current as T;
  }

  /** The schema a response with this status and media type must match, or undefined if none is declared. */
  responseSchema(operation: Operation, status: number, mediaType: string): Schema | undefined {
    const responses = (operation.raw.responses ?? {}) as Json;
    const response = this.deref(responses[String(status)] ?? responses.default);
    const content = (response?.content ?? {}) as Record<string, Json>;
    return content[mediaType]?.schema as Schema | undefined;
  }

  private compileOperation(method: string, template: string, op: Json, globalSecurity: unknown[] | undefined, pathItemParams: unknown[]): Operation {
    const security = (op.security as unknown[] | undefined) ?? globalSecurity ?? [];
    const requestBodies = new Map<string, Schema>();
    const routeParsedBodies = new Map<string, Schema>();
    const jsonParts = new Set<string>();
    const body = this.deref<Json | undefined>(op.requestBody);
    for (const [mediaType, media] of Object.entries((body?.content ?? {}) as Record<string, Json>)) {
      const schema = (media.schema ?? true) as Schema;
      assertKnownKeywords(this.expand(schema), `${method} ${template} ${mediaType}`);
      if (media['x-parsed-by-route'] === true) {
        requestBodies.set(mediaType, true);
        routeParsedBodies.set(mediaType, schema);
        for (const [name, enc] of Object.entries((media.encoding ?? {}) as Record<string, Json>)) {
          if (
            String(enc.contentType ?? '')
              .split(';')[0]!
              .trim() === 'application/json'
          )
            jsonParts.add(name);
        }
      } else requestBodies.set(mediaType, schema);
    }
    const formSchema = routeParsedBodies.get('multipart/form-data');
    const headerParams = new Map<string, Schema>();
    const pathParams = new Map<string, Schema>();
    // An operation's parameter overrides the path item's of the same name and location.
    for (const p of [...pathItemParams, ...((op.parameters ?? []) as unknown[])]) {
      const param = this.deref<Json>(p);
      if (param.in === 'header') headerParams.set(String(param.name).toLowerCase(), param.schema as Schema);
      if (param.in === 'path') pathParams.set(String(param.name), (param.schema ?? true) as Schema);
    }
    const undeclared = [...template.matchAll(/\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]!).filter((name) => !pathParams.has(name));
    if (undeclared.length > 0) throw new Error(`${method} ${template}: path parameter ${undeclared.join(', ')} is not declared`);
    return Object.freeze({
      operationId: String(op.operationId),
      method,
      template,
      authenticated: security.length > 0,
      roles: Object.freeze(((op['x-roles'] as string[] | undefined) ?? []).slice()),
      requestBodies,
      routeParsedBodies,
      checkParsedForm: (fields: Record<string, unknown>, fileParts: readonly string[]): SchemaIssue[] => {
        if (formSchema === undefined) throw new Error(`${method} ${template} has no multipart body parsed by its route`);
        return this.validator.validate(formSchema, this.formValue(formSchema, fields, fileParts, jsonParts));
      },
      bodyRequired: body?.required === true,
      headerParams,
      pathParams,
      raw: op,
    });
  }

  /** A parsed form as the value its schema describes: typed fields, JSON parts parsed, files as markers. */
  private formValue(schema: Schema, fields: Record<string, unknown>, fileParts: readonly string[], jsonParts: ReadonlySet<string>): Record<string, unknown> {
    const value = formToObject(this, schema, fields, {});
    const properties = (typeof schema === 'object' ? (this.deref<Json>(schema).properties ?? {}) : {}) as Record<string, unknown>;
    // A blank field that is not a string (`-F canary_weight=`) is as if not sent, as the routes read it.
    for (const [name, raw] of Object.entries(value)) {
      const type = this.deref<Json | undefined>(properties[name])?.type;
      const stringTyped = type === 'string' || (Array.isArray(type) && type.includes('string'));
      if (typeof raw === 'string' && raw.trim() === '' && properties[name] !== undefined && !stringTyped) delete value[name];
    }
    for (const name of jsonParts) {
      const raw = value[name];
      if (typeof raw !== 'string') continue;
      try {
        value[name] = JSON.parse(raw);
      } catch {
        // left as the string: the schema then says what it should have been
      }
    }
    const counts = new Map<string, number>();
    for (const name of fileParts) counts.set(name, (counts.get(name) ?? 0) + 1);
    for (const [name, n] of counts) {
      const repeated = this.deref<Json | undefined>(properties[name])?.type === 'array' || n > 1;
      value[name] = repeated ? Array.from({ length: n }, () => '<binary>') : '<binary>';
    }
    return value;
  }

  /** The schema with its refs inlined (for keyword checks only; the contract has no cycles at the top). */
  private expand(schema: unknown, seen = new Set<string>()): unknown {
    if (typeof schema !== 'object' || schema === null) return schema;
    if (Array.isArray(schema)) return schema.map((s) => this.expand(s, seen));
    const out: Json = {};
    for (const [key, value] of Object.entries(schema)) {
      if (key === '$ref' && typeof value === 'string') {
        if (seen.has(value)) continue;
        const next = new Set(seen).add(value);
        Object.assign(out, this.expand(this.resolveRef(value), next));
        continue;
      }
      if (key === 'properties') {
        out[key] = Object.fromEntries(Object.entries(value as Json).map(([k, v]) => [k, this.expand(v, seen)]));
      } else out[key] = ['items', 'additionalProperties', 'anyOf', 'oneOf', 'allOf'].includes(key) ? this.expand(value, seen) : value;
    }
    return out;
  }
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}
