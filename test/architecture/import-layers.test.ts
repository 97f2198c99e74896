// Layers point one way (the table: layers.ts). Reads every import of src/ with the TypeScript
// parser (static, type-only, re-exports and dynamic import()) and fails on an import of a higher or
// same-layer unit, on a unit the table does not place, and on import cycles between units or files.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { LAYERS, layerOf, sameLayerAllowed, unitOf } from './layers.ts';

const SRC = path.resolve(import.meta.dirname, '../../src');

/** src-relative file → the src-relative files it imports. */
type ImportGraph = Map<string, string[]>;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

function readImportGraph(root: string): ImportGraph {
  const graph: ImportGraph = new Map();
  for (const file of sourceFiles(root)) {
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = info.importedFiles
      .map((f) => f.fileName)
      .filter((spec) => spec.startsWith('.'))
      .map((spec) =>
        path
          .relative(root, path.resolve(path.dirname(file), spec))
          .split(path.sep)
          .join('/'),
      );
    graph.set(path.relative(root, file).split(path.sep).join('/'), [...new Set(targets)]);
  }
  return graph;
}

function mayImport(from: string, to: string): boolean {
  if (from === to) return true;
  const a = layerOf(from);
  const b = layerOf(to);
  return b > a || sameLayerAllowed(from, to);
}

export function layerViolations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    const from = unitOf(file);
    if (layerOf(from) < 0) out.push(`${file}: unit "${from}" is not in the layer table (test/architecture/layers.ts)`);
    for (const target of targets) {
      const to = unitOf(target);
      if (layerOf(to) >= 0 && layerOf(from) >= 0 && !mayImport(from, to)) {
        const how = layerOf(to) < layerOf(from) ? 'a higher layer' : 'another unit of its own layer';
        out.push(`${file} imports ${target}: ${from} (layer ${layerOf(from)}) may not import ${to}, ${how} (layer ${layerOf(to)})`);
      }
    }
  }
  return out;
}

/** Every cycle's members (strongly connected components of more than one node, or a self-loop). */
export function cyclesOf(edges: Map<string, Set<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || edges.get(v)?.has(v)) found.push(component.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  return found;
}

function edgesBetween(graph: ImportGraph, keyOf: (file: string) => string): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  for (const [file, targets] of graph) {
    const from = keyOf(file);
    if (!edges.has(from)) edges.set(from, new Set());
    for (const target of targets) if (keyOf(target) !== from || keyOf === identity) edges.get(from)!.add(keyOf(target));
  }
  return edges;
}

const identity = (file: string): string => file;

const graph = readImportGraph(SRC);

test('the import graph is read (a parse that found nothing would pass everything)', () => {
  assert.ok(graph.size > 100, `${graph.size} files`);
  assert.ok(graph.get('app.ts')!.includes('http/serve.ts') === false && graph.get('app.ts')!.length > 20);
  assert.ok(graph.get('main.ts')!.includes('app.ts'));
});

test('no unit imports a unit of a higher layer or another unit of its own layer', () => {
  assert.deepEqual(layerViolations(graph), []);
});

test('no import cycles between folders', () => {
  assert.deepEqual(cyclesOf(edgesBetween(graph, unitOf)), []);
});

test('no import cycles between files', () => {
  assert.deepEqual(cyclesOf(edgesBetween(graph, identity)), []);
});

test('every unit in the table exists in src/', () => {
  const units = new Set([...graph.keys()].map(unitOf));
  for (const unit of LAYERS.flat()) assert.ok(units.has(unit), `${unit} is in the table but not in src/`);
});

test('the checks catch an upward import, a same-layer import, an unplaced folder and a cycle', () => {
  const bad: ImportGraph = new Map([
    ['runtime/generate.ts', ['serving/vqa.service.ts']],
    ['serving/vqa.service.ts', ['jobs/job-queue.ts']],
    ['jobs/job-queue.ts', []],
    ['gadgets/x.ts', []],
  ]);
  const found = layerViolations(bad);
  assert.equal(found.length, 3, found.join('\n'));
  assert.match(found[0]!, /runtime .* may not import serving, a higher layer/);
  assert.match(found[1]!, /serving .* may not import jobs, another unit of its own layer/);
  assert.match(found[2]!, /"gadgets" is not in the layer table/);
  const cyclic: ImportGraph = new Map([
    ['a/x.ts', ['b/y.ts']],
    ['b/y.ts', ['c/z.ts']],
    ['c/z.ts', ['a/x.ts']],
    ['d/w.ts', ['a/x.ts']],
  ]);
  assert.deepEqual(cyclesOf(edgesBetween(cyclic, unitOf)), [['a', 'b', 'c']]);
});

// A trained model becomes a package in one place, the trainers' shared ending (score, then write),
// so a caller with other needs (the fine-tune worker's held-out set and before/after scores) passes
// them in rather than switching the ending off and writing its own.
test("only the trainers' shared ending exports model packages", () => {
  const importers = [...graph].filter(([, targets]) => targets.includes('registry/package-export.ts')).map(([file]) => file);
  assert.deepEqual(importers, ['training/run-output.ts']);
});
