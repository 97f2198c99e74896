// A fine-tune end to end with real processes and a real (tiny) model: upload a small real
// labelled set as a .tar.gz → the job succeeds (watched over SSE) → the new model's manifest names
// its parent, dataset, hyperparameters, seed and before/after metrics → it is listed in /v1/models
// → it answers /v1/vqa when named → canary traffic reaches it → promote sends all traffic to it →
// rollback restores the table. Every admin action is in the audit log.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { verifyModelPackage } from '../../src/registry/model-package.ts';
import { writeTarArchive } from './support/tar-writer.ts';
import { ADMIN, CLINICIAN, getJson, startFineTuneServer, waitFor, type ServerProcess } from './support/server-process.ts';
import { writeTinyBase } from './support/tiny-base.ts';

let root: string;
let server: ServerProcess;
const FIX = 'test/fixtures/vqa';

before(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'ft-e2e-'));
  await writeTinyBase(path.join(root, 'models'));
  server = await startFineTuneServer({
    dataDir: path.join(root, 'var'),
    modelsDir: path.join(root, 'models'),
    extra: { FT_STANDARD_VALIDATION: `${FIX}/slake.jsonl` },
  });
});
after(async () => {
  if (server) {
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
  }
  rmSync(root, { recursive: true, force: true });
});

function archiveOfFixtures(): Buffer {
  const jsonl = readFileSync(`${FIX}/vqa-rad.jsonl`);
  const images = [
    ...new Set(
      jsonl
        .toString()
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { image: string }).image),
    ),
  ];
  return gzipSync(
    writeTarArchive([{ path: 'rad/cases.jsonl', data: jsonl }, ...images.map((i) => ({ path: `rad/${i}`, data: readFileSync(path.join(FIX, i)) }))]),
  );
}

/** Reads an SSE response to its end; returns the events' names and parsed data. */
async function readSse(res: Response): Promise<{ event: string; data: { type: string; message: string } }[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter((block) => block.includes('event: '))
    .map((block) => ({
      event: /^event: (.+)$/m.exec(block)![1]!,
      data: JSON.parse(/^data: (.+)$/m.exec(block)![1]!) as { type: string; message: string },
    }));
}

async function ask(fields: Record<string, string>, clientId?: string): Promise<{ model: string; variant: string; answer: string }> {
  const form = new FormData();
  form.append('image', new Blob([readFileSync(`${FIX}/images/synpic29265.jpg`)]), 'x.jpg');
  form.append('question', 'Is there air under the diaphragm?');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(`${server.url}/v1/vqa`, { method: 'POST', headers: { ...CLINICIAN, ...(clientId ? { 'X-Client-Id': clientId } : {}) }, body: form });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as { model: string; variant: string; answer: string };
}

test('upload → job succeeds → listed → answers when named → canary traffic → promote → rollback', async () => {
  // 1. upload
  const form = new FormData();
  form.append('base_model', 'tiny-base');
  form.append(
    'hyperparameters',
    JSON.stringify({ max_steps: 4, checkpoint_every: 2, prompts_per_step: 2, num_generations: 2, max_completion_length: 8, eval_samples: 6, seed: 5 }),
  );
  form.append('validation_fraction', '0.25');
  form.append('canary_weight', '0.5');
  form.append('archive', new Blob([new Uint8Array(archiveOfFixtures())]), 'rad.tar.gz');
  const created = await fetch(`${server.url}/admin/fine-tunes`, { method: 'POST', headers: ADMIN, body: form });
  assert.equal(created.status, 201, await created.clone().text());
  const { id } = (await created.json()) as { id: string };

  // 2. watch it over SSE until the stream ends with the final status
  const sse = await fetch(`${server.url}/admin/fine-tunes/${id}/events`, { headers: { ...ADMIN, Accept: 'text/event-stream' } });
  assert.match(sse.headers.get('content-type') ?? '', /text\/event-stream/);
  const events = (await readSse(sse)).map((e) => e.event);
  assert.equal(events.at(-1), 'succeeded', `${events.join(' ')}\n${server.output()}`);
  for (const expected of ['created', 'validated', 'worker_started', 'eval_before', 'metrics', 'eval_after', 'package_written', 'model_registered', 'canary']) {
    assert.ok(events.includes(expected), `missing ${expected}: ${events.join(' ')}`);
  }
  assert.equal(events.filter((e) => e === 'metrics').length, 4);

  // 3. the job and its package
  const job = await getJson<{
    status: string;
    result_model: string;
    dataset_sha256: string;
    progress: { step: number; total: number };
    metrics: Record<string, Record<string, Record<string, { n: number }>>>;
  }>(`${server.url}/admin/fine-tunes/${id}`);
  assert.equal(job.status, 'succeeded');
  assert.deepEqual([job.progress.step, job.progress.total], [4, 4]);
  for (const when of ['before', 'after']) {
    assert.equal(job.metrics[when]!.held_out!.all!.n, 6, `${when}: a quarter of 24 cases held out`);
    assert.equal(job.metrics[when]!.validation!.all!.n, 6, `${when}: eval_samples standard validation cases`);
  }
  // Written under the data dir, not among the shipped packages.
  const manifest = await verifyModelPackage(path.join(root, 'var', 'models', job.result_model));
  assert.equal(manifest.parent, 'tiny-base');
  assert.equal(manifest.method, 'grpo');
  assert.equal(manifest.seed, 5);
  assert.equal(manifest.dataset.sha256, job.dataset_sha256);
  assert.equal(manifest.training.max_steps, 4);
  assert.equal(manifest.training.fine_tune_job, id);
  assert.deepEqual(Object.keys(manifest.eval).sort(), ['after', 'before']);

  // 4. listed without a restart, and answers when asked by name
  const models = await getJson<{ data: { id: string }[] }>(`${server.url}/v1/models`, CLINICIAN);
  assert.ok(
    models.data.some((m) => m.id === job.result_model),
    JSON.stringify(models),
  );
  const named = await ask({ model: job.result_model });
  assert.equal(named.model, job.result_model);

  // 5. canary: half the traffic by weight, sticky per client
  const table = await getJson<{ variants: { model: string; weight: number }[] }>(`${server.url}/admin/ab`);
  const total = table.variants.reduce((s, v) => s + v.weight, 0);
  assert.equal(table.variants.find((v) => v.model === job.result_model)!.weight / total, 0.5);
  const seen = new Set<string>();
  for (let i = 0; i < 24 && seen.size < 2; i++) seen.add((await ask({}, `client-${i}`)).model);
  assert.deepEqual([...seen].sort(), ['tiny-base', job.result_model].sort(), 'canary traffic reaches the new model and the base keeps the rest');

  // 6. promote: all traffic; rollback: the canary table again
  const promoted = await fetch(`${server.url}/admin/models/${job.result_model}/promote`, { method: 'POST', headers: ADMIN });
  assert.equal(promoted.status, 200, await promoted.clone().text());
  assert.equal(((await promoted.json()) as { promoted: string }).promoted, job.result_model);
  for (let i = 0; i < 6; i++) assert.equal((await ask({}, `client-${i}`)).model, job.result_model);
  const rolledBack = await fetch(`${server.url}/admin/models/${job.result_model}/rollback`, { method: 'POST', headers: ADMIN });
  assert.equal(rolledBack.status, 200, await rolledBack.clone().text());
  const restored = (await rolledBack.json()) as { promoted: string | null; variants: { model: string; weight: number }[] };
  assert.equal(restored.promoted, null);
  assert.deepEqual(
    restored.variants.map((v) => v.weight),
    table.variants.map((v) => v.weight),
  );

  // 7. the audit trail: who uploaded, promoted and rolled back (ids only). Lines are appended after
  // each response is sent, so the last one may land a moment after the client has its answer.
  type AuditLine = { action: string; status: number; details: { job_id?: string } | null };
  const wanted = (lines: AuditLine[]) =>
    lines.some((a) => a.action === 'fine_tune.create' && a.status === 201 && a.details?.job_id === id) &&
    lines.some((a) => a.action === 'ab_table.promote' && a.status === 200) &&
    lines.some((a) => a.action === 'ab_table.rollback' && a.status === 200);
  const readAudit = async () =>
    readFileSync(path.join(root, 'var', 'audit', 'audit.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditLine);
  await waitFor('the audit lines of the upload, the promotion and the rollback', readAudit, wanted, 5000);
});
