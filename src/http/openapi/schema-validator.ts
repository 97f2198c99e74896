// A small JSON Schema (2020-12 subset) validator for the keywords openapi.yaml uses. Written here
// rather than added as a dependency: the contract uses about twenty keywords, and a validator we
// can read end to end is easier to trust than a schema compiler we cannot. A keyword the contract
// starts using that this file does not know is a startup error (see assertKnownKeywords), so the
// contract can never silently stop being enforced.

export type Schema = { [keyword: string]: unknown } | boolean;

export interface SchemaIssue {
  /** JSON Pointer into the validated value, e.g. `/messages/0/content`. */
  path: string;
  message: string;
}

/** Looks up `#/...` references; the spec module provides one bound to openapi.yaml. */
export type RefResolver = (ref: string) => Schema;

const KNOWN_KEYWORDS = new Set([
  // validation
  'type',
  'const',
  'enum',
  'required',
  'properties',
  'additionalProperties',
  'items',
  'minItems',
  'maxItems',
  'minLength',
  'maxLength',
  'pattern',
  'minimum',
  'maximum',
  'exclusiveMinimum',
  'exclusiveMaximum',
  'anyOf',
  'oneOf',
  'allOf',
  '$ref',
  // annotations only
  'description',
  'title',
  'default',
  'format',
  'example',
  'examples',
  'deprecated',
  'readOnly',
  'writeOnly',
  'contentMediaType',
  'contentEncoding',
]);

/** Throws when a schema uses a keyword (or x- extension aside) this validator does not implement. */
export function assertKnownKeywords(schema: unknown, where: string): void {
  if (typeof schema !== 'object' || schema === null) return;
  if (Array.isArray(schema)) {
    schema.forEach((s, i) => assertKnownKeywords(s, `${where}/${i}`));
    return;
  }
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-')) continue;
    if (!KNOWN_KEYWORDS.has(key)) throw new Error(`${where}: JSON Schema keyword "${key}" is not supported by the validator`);
    if (key === 'properties') {
      for (const [name, sub] of Object.entries(value as object)) assertKnownKeywords(sub, `${where}/properties/${name}`);
    } else if (['items', 'additionalProperties', 'anyOf', 'oneOf', 'allOf'].includes(key)) {
      assertKnownKeywords(value, `${where}/${key}`);
    }
  }
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function matchesType(value: unknown, type: string): boolean {
  const actual = typeOf(value);
  if (type === 'number') return actual === 'number' || actual === 'integer';
  return actual === type;
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => deepEqual((a as never)[k], (b as never)[k]));
}

function escapePointer(segment: string | number): string {
  return String(segment).replace(/~/g, '~0').replace(/\//g, '~1');
}

const patternCache = new Map<string, RegExp>();
function compiledPattern(pattern: string): RegExp {
  let re = patternCache.get(pattern);
  if (!re) {
    re = new RegExp(pattern, 'u');
    patternCache.set(pattern, re);
  }
  return re;
}

/** Length in code points, as JSON Schema counts string length. */
function codePointLength(text: string): number {
  let n = 0;
  for (const _ of text) n++;
  return n;
}

export class SchemaValidator {
  constructor(private readonly resolve: RefResolver) {}

  /** Every place `value` breaks `schema`; empty when it conforms. */
  validate(schema: Schema, value: unknown, path = ''): SchemaIssue[] {
    const issues: SchemaIssue[] = [];
    this.check(schema, value, path, issues);
    return issues;
  }

  private check(schema: Schema, value: unknown, path: string, out: SchemaIssue[]): void {
    if (schema === true) return;
    if (schema === false) {
      out.push({ path: path || '/', message: 'is not allowed' });
      return;
    }
    const at = path || '/';
    const s = schema;
    if (typeof s.$ref === 'string') this.check(this.resolve(s.$ref), value, path, out);

    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
      if (!types.some((t) => matchesType(value, t))) {
        out.push({ path: at, message: `must be ${types.join(' or ')}` });
        return; // further keywords would only repeat the type error
      }
    }
    if ('const' in s && !deepEqual(value, s.const)) out.push({ path: at, message: `must be ${JSON.stringify(s.const)}` });
    if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, value))) {
      out.push({ path: at, message: `must be one of ${s.enum.map((e) => JSON.stringify(e)).join(', ')}` });
    }

    if (typeof value === 'string') this.checkString(s, value, at, out);
    if (typeof value === 'number') this.checkNumber(s, value, at, out);
    if (Array.isArray(value)) this.checkArray(s, value, path, out);
    else if (typeof value === 'object' && value !== null) this.checkObject(s, value as Record<string, unknown>, path, out);

    if (Array.isArray(s.allOf)) for (const sub of s.allOf as Schema[]) this.check(sub, value, path, out);
    if (Array.isArray(s.anyOf)) {
      const branches = (s.anyOf as Schema[]).map((sub) => this.validate(sub, value, path));
      if (!branches.some((b) => b.length === 0)) out.push(...this.bestBranch(s.anyOf as Schema[], branches, value, at, 'anyOf'));
    }
    if (Array.isArray(s.oneOf)) {
      const branches = (s.oneOf as Schema[]).map((sub) => this.validate(sub, value, path));
      const passing = branches.filter((b) => b.length === 0).length;
      if (passing === 0) out.push(...this.bestBranch(s.oneOf as Schema[], branches, value, at, 'oneOf'));
      else if (passing > 1) out.push({ path: at, message: 'matches more than one allowed shape' });
    }
  }

  /**
   * The issues of the branch that came closest, so the client sees a useful reason. A branch of the
   * value's own type comes first: an over-long array is better told "at most 16 items" than "must be
   * string" by the string branch it never meant to match.
   */
  private bestBranch(schemas: Schema[], branches: SchemaIssue[][], value: unknown, at: string, keyword: string): SchemaIssue[] {
    const rank = (i: number): [number, number] => [this.admitsType(schemas[i]!, value) ? 0 : 1, branches[i]!.length];
    const order = branches
      .map((_, i) => i)
      .sort((a, b) => {
        const [ta, na] = rank(a);
        const [tb, nb] = rank(b);
        return ta - tb || na - nb;
      });
    const best = order.length > 0 ? branches[order[0]!] : undefined;
    if (!best || best.length === 0) return [{ path: at, message: `does not match ${keyword}` }];
    return best;
  }

  /** Whether the schema (through its $refs) declares no type, or a type the value has. */
  private admitsType(schema: Schema, value: unknown): boolean {
    let s: Schema = schema;
    for (let hops = 0; typeof s === 'object' && typeof s.$ref === 'string' && s.type === undefined && hops < 32; hops++) s = this.resolve(s.$ref);
    if (typeof s !== 'object' || s.type === undefined) return s !== false;
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    return types.some((t) => matchesType(value, t));
  }

  private checkString(s: { [k: string]: unknown }, value: string, at: string, out: SchemaIssue[]): void {
    const inRange = (n: number) => (typeof s.minLength !== 'number' || n >= s.minLength) && (typeof s.maxLength !== 'number' || n <= s.maxLength);
    // The UTF-16 length bounds the code-point count from above, and half of it from below; when
    // both bounds are in range so is the count, and a base64 image (tens of kB) is not walked.
    if (!(inRange(value.length) && inRange(Math.ceil(value.length / 2)))) {
      const length = codePointLength(value);
      if (typeof s.minLength === 'number' && length < s.minLength) out.push({ path: at, message: `must have at least ${s.minLength} characters` });
      if (typeof s.maxLength === 'number' && length > s.maxLength) out.push({ path: at, message: `must have at most ${s.maxLength} characters` });
    }
    if (typeof s.pattern === 'string' && !compiledPattern(s.pattern).test(value)) {
      out.push({ path: at, message: `must match the pattern ${s.pattern}` });
    }
  }

  private checkNumber(s: { [k: string]: unknown }, value: number, at: string, out: SchemaIssue[]): void {
    if (typeof s.minimum === 'number' && value < s.minimum) out.push({ path: at, message: `must be >= ${s.minimum}` });
    if (typeof s.maximum === 'number' && value > s.maximum) out.push({ path: at, message: `must be <= ${s.maximum}` });
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum) out.push({ path: at, message: `must be > ${s.exclusiveMinimum}` });
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum) out.push({ path: at, message: `must be < ${s.exclusiveMaximum}` });
  }

  private checkArray(s: { [k: string]: unknown }, value: unknown[], path: string, out: SchemaIssue[]): void {
    const at = path || '/';
    if (typeof s.minItems === 'number' && value.length < s.minItems) out.push({ path: at, message: `must have at least ${s.minItems} items` });
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) {
      out.push({ path: at, message: `must have at most ${s.maxItems} items` });
      return; // do not walk an oversized array item by item
    }
    if (s.items !== undefined) value.forEach((item, i) => this.check(s.items as Schema, item, `${path}/${i}`, out));
  }

  private checkObject(s: { [k: string]: unknown }, value: Record<string, unknown>, path: string, out: SchemaIssue[]): void {
    if (Array.isArray(s.required)) {
      for (const name of s.required as string[]) {
        if (!Object.hasOwn(value, name) || value[name] === undefined) out.push({ path: `${path}/${escapePointer(name)}`, message: 'is required' });
      }
    }
    const properties = (s.properties ?? {}) as Record<string, Schema>;
    for (const [name, child] of Object.entries(value)) {
      if (child === undefined) continue;
      const childPath = `${path}/${escapePointer(name)}`;
      if (Object.hasOwn(properties, name)) this.check(properties[name]!, child, childPath, out);
      else if (s.additionalProperties === false) out.push({ path: childPath, message: 'is not an allowed property' });
      else if (typeof s.additionalProperties === 'object') this.check(s.additionalProperties as Schema, child, childPath, out);
    }
  }
}
