import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AuditLog, type AuditEntry } from '../../src/audit/audit-log.ts';

const entry = (i: number): AuditEntry => ({
  time: new Date(0).toISOString(),
  request_id: `req-${i}`,
  key_id: 'key_0123456789ab',
  role: 'clinician',
  method: 'POST',
  route: '/v1/vqa',
  target: null,
  action: 'answerQuestion',
  details: null,
  model: 'clinvqa-sft',
  variant: 'clinvqa-sft',
  image_sha256: 'a'.repeat(64),
  status: 200,
  duration_ms: 5,
});

test('appends one JSON line per entry to <data dir>/audit/audit.jsonl, across reopenings, owner-only', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-audit-'));
  try {
    const first = new AuditLog(dir);
    first.write(entry(1));
    first.write(entry(2));
    await first.close();
    const second = new AuditLog(dir);
    second.write(entry(3));
    await second.close();
    const lines = readFileSync(second.file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditEntry);
    assert.deepEqual(
      lines.map((l) => l.request_id),
      ['req-1', 'req-2', 'req-3'],
    );
    assert.equal(second.file, path.join(dir, 'audit', 'audit.jsonl'));
    assert.equal(statSync(second.file).mode & 0o077, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
