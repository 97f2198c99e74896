// Crash recovery with real processes: kill -9 of the training worker → the job resumes from its last
// checkpoint; then kill -9 of the server mid-job → its orphaned worker stops, and the restarted server
// picks the job up and finishes it. Nothing uploaded is lost: the stored dataset is byte-identical to
// the upload and still hashes to the job's dataset_sha256.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadVqaUnion } from '../../src/data/jsonl-loader.ts';
import { ADMIN, CLINICIAN, fixtureUpload, getJson, killHard, startFineTuneServer, waitFor, type ServerProcess } from './support/server-process.ts';
import { writeTinyBase } from './support/tiny-base.ts';

interface Job {
  id: string;
  status: string;
  progress: { step: number; total: number };
  dataset_sha256: string;
  result_model: string | null;
  error: unknown;
  attempts: number;
  crashes: number;
}
interface Event {
  id: number;
  type: string;
  data: Record<string, number> | null;
}

let root: string;
const servers: ServerProcess[] = [];
const JSONL = readFileSync('test/fixtures/vqa/vqa-rad.jsonl');

before(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'ft-crash-'));
  await writeTinyBase(path.join(root, 'models'));
});
after(async () => {
  for (const s of servers) await killHard(s.child);
  rmSync(root, { recursive: true, force: true });
});

const dirs = () => ({ dataDir: path.join(root, 'var'), modelsDir: path.join(root, 'models') });
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('worker kill -9 → resume from checkpoint; server kill -9 → picked up on restart and finished; nothing lost', async () => {
  let server = await startFineTuneServer(dirs());
  servers.push(server);
  const job = (url: string) => () => getJson<Job>(`${url}/admin/fine-tunes/${id}`);
  const events = async (url: string) => (await getJson<{ data: Event[] }>(`${url}/admin/fine-tunes/${id}/events`)).data;
  const workerPids = (es: Event[]) => es.filter((e) => e.type === 'worker_started').map((e) => e.data!.pid!);

  const res = await fetch(`${server.url}/admin/fine-tunes`, {
    method: 'POST',
    headers: ADMIN,
    body: fixtureUpload(
      {
        base_model: 'tiny-base',
        hyperparameters: JSON.stringify({
          max_steps: 60,
          checkpoint_every: 2,
          prompts_per_step: 2,
          num_generations: 2,
          max_completion_length: 8,
          eval_samples: 4,
        }),
      },
      JSONL,
    ),
  });
  assert.equal(res.status, 201, await res.clone().text());
  const id = ((await res.json()) as Job).id;

  // 1. kill -9 the worker mid-training
  await waitFor('training', job(server.url), (j) => j.progress.step >= 5);
  const [firstWorker] = workerPids(await events(server.url));
  process.kill(firstWorker!, 'SIGKILL');
  const afterCrash = await waitFor(
    'a resumed worker to train',
    () => events(server.url),
    (es) => {
      const crash = es.findIndex((e) => e.type === 'worker_crashed');
      return crash >= 0 && es.slice(crash).some((e) => e.type === 'metrics');
    },
  );
  const crashAt = afterCrash.findIndex((e) => e.type === 'worker_crashed');
  const crashedAfter = afterCrash[crashAt]!.data!.step!;
  const resumedAt = afterCrash.slice(crashAt).find((e) => e.type === 'metrics')!.data!.step!;
  assert.ok(resumedAt > 1 && resumedAt <= crashedAfter + 1, `resumed at step ${resumedAt}, crash after step ${crashedAfter}`);
  assert.ok(resumedAt >= crashedAfter - 1, 'at most checkpoint_every steps were redone');

  // 2. kill -9 the server mid-job; its worker notices and stops
  await waitFor('more training', job(server.url), (j) => j.progress.step >= resumedAt + 4);
  const secondWorker = workerPids(await events(server.url)).at(-1)!;
  const stepAtKill = (await job(server.url)()).progress.step;
  assert.ok(stepAtKill < 60, 'the server is killed before the job ends');
  await killHard(server.child);
  await waitFor(
    'the orphaned worker to exit',
    async () => alive(secondWorker),
    (a) => !a,
    15_000,
  );

  // 3. restart: the job is picked up and finishes
  server = await startFineTuneServer(dirs());
  servers.push(server);
  const done = await waitFor('the job to finish after the restart', job(server.url), (j) => ['succeeded', 'failed', 'cancelled'].includes(j.status), 90_000);
  assert.equal(done.status, 'succeeded', `${JSON.stringify(done.error)}\n${server.output()}`);
  assert.equal(done.crashes, 1, 'the server kill is not counted as a worker crash');
  const all = await events(server.url);
  const resumed = all.findIndex((e) => e.type === 'resumed');
  assert.ok(resumed > 0, 'the restart is recorded');
  const firstAfterRestart = all.slice(resumed).find((e) => e.type === 'metrics')!.data!.step!;
  assert.ok(firstAfterRestart > resumedAt && firstAfterRestart <= stepAtKill + 1, `restarted at step ${firstAfterRestart} (killed after ${stepAtKill})`);
  assert.equal(all.filter((e) => e.type === 'metrics').at(-1)!.data!.step, 60);
  const models = await getJson<{ data: { id: string }[] }>(`${server.url}/v1/models`, CLINICIAN);
  assert.ok(models.data.some((m) => m.id === done.result_model));

  // 4. nothing uploaded was lost
  const stored = path.join(root, 'var', 'datasets', done.dataset_sha256);
  assert.deepEqual(readFileSync(path.join(stored, 'train.jsonl')), JSONL);
  const names = [
    ...new Set(
      JSONL.toString()
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { image: string }).image),
    ),
  ];
  for (const name of names) assert.deepEqual(readFileSync(path.join(stored, name)), readFileSync(path.join('test/fixtures/vqa', name)), name);
  const reloaded = await loadVqaUnion([path.join(stored, 'train.jsonl')], { dataset: 'upload' });
  assert.equal(reloaded.cases.length, 24);
  assert.equal(reloaded.sha256, done.dataset_sha256);
  assert.deepEqual(readdirSync(path.join(root, 'var', 'uploads')), [], 'the staged upload was consumed, not left behind');
});
