// The JSON files of a model folder, read with errors that name the file.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HfFolderError } from './errors.ts';

export type JsonRecord = Record<string, unknown>;

export function isJsonRecord(value: unknown): value is JsonRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function errnoCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

/** The text of `dir/name`, or undefined when there is no such file. */
export async function readOptionalText(dir: string, name: string): Promise<string | undefined> {
  const path = join(dir, name);
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'ENOENT') return undefined;
    throw new HfFolderError(`${path}: cannot read (${code ?? (error as Error).message})`, path);
  }
}

function parseJsonObject(text: string, path: string): JsonRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // A file cut short by an interrupted download ends up here.
    throw new HfFolderError(`${path}: not valid JSON (truncated?): ${(error as Error).message}`, path);
  }
  if (!isJsonRecord(value)) throw new HfFolderError(`${path}: must hold a JSON object`, path);
  return value;
}

/** `dir/name` parsed as a JSON object; a missing file is an error. */
export async function readJsonFile(dir: string, name: string): Promise<JsonRecord> {
  const text = await readOptionalText(dir, name);
  const path = join(dir, name);
  if (text === undefined) throw new HfFolderError(`${path}: missing file`, path);
  return parseJsonObject(text, path);
}

/** `dir/name` parsed as a JSON object, or undefined when the file does not exist. */
export async function readOptionalJsonFile(dir: string, name: string): Promise<JsonRecord | undefined> {
  const text = await readOptionalText(dir, name);
  return text === undefined ? undefined : parseJsonObject(text, join(dir, name));
}
