// Comments say why. A pointer to a design-document section or to an issue number says where a
// reason once was written down, not the reason, and goes stale when either is renumbered.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const root = path.resolve(import.meta.dirname, '../..');
const CITATION = /DESIGN(?:\.md)?\s*§\s*\d|\b[Ii]ssues?\s+#?\d+\b/;

test('no source comment or test name cites a DESIGN section or an issue number', () => {
  const offenders: string[] = [];
  for (const dir of ['src', 'scripts', 'test']) {
    for (const file of readdirSync(path.join(root, dir), { recursive: true, encoding: 'utf8' })) {
      if (!file.endsWith('.ts')) continue;
      const relative = path.join(dir, file);
      if (relative === path.join('test', 'architecture', 'comments.test.ts')) continue;
      readFileSync(path.join(root, relative), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (CITATION.test(line)) offenders.push(`${relative}:${i + 1}: ${line.trim()}`);
        });
    }
  }
  assert.deepEqual(offenders, []);
});
