// Multipart form fields arrive as strings; the operation's schema says which are numbers or booleans.
import type { Schema } from './schema-validator.ts';

/** What formToObject needs of the spec: `$ref` resolution. */
export interface SchemaResolver {
  deref<T>(node: unknown): T;
}

function schemaTypes(spec: SchemaResolver, schema: Schema | undefined): string[] {
  if (typeof schema !== 'object') return [];
  const s = spec.deref<Record<string, unknown>>(schema);
  return Array.isArray(s.type) ? (s.type as string[]) : typeof s.type === 'string' ? [s.type] : [];
}

/** Form fields (strings) → typed values by the schema's property types; files become a marker. */
export function formToObject(
  spec: SchemaResolver,
  schema: Schema,
  fields: Record<string, unknown>,
  files: Record<string, Express.Multer.File>,
): Record<string, unknown> {
  const properties = (typeof schema === 'object' ? (spec.deref<Record<string, unknown>>(schema).properties ?? {}) : {}) as Record<string, Schema>;
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(fields)) {
    const types = schemaTypes(spec, properties[name]);
    let value: unknown = raw;
    if (typeof raw === 'string') {
      const trimmed = raw.trim();
      if ((types.includes('integer') || types.includes('number')) && trimmed !== '' && Number.isFinite(Number(trimmed))) value = Number(trimmed);
      else if (types.includes('boolean') && (trimmed === 'true' || trimmed === 'false')) value = trimmed === 'true';
    }
    out[name] = value;
  }
  // The schema only says a binary part is present; its bytes stay on req.file.
  for (const name of Object.keys(files)) out[name] = `<binary ${files[name]!.size} bytes>`;
  return out;
}
