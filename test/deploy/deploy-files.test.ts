// The deploy/ files cannot be run here (no Docker engine, no Kubernetes cluster); this checks what
// can be checked without them: they parse, and every process gets what it needs — the same database
// URL and shared data dir, the right command, probes on /readyz and /healthz, the shared volume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse, parseAllDocuments } from 'yaml';

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML of unknown shape, walked by key in assertions
type Obj = Record<string, any>;

test('compose.yaml: postgres, two server replicas behind nginx, a worker, one shared volume, the same env everywhere', () => {
  const compose = parse(readFileSync('deploy/compose.yaml', 'utf8'), { merge: true }) as Obj;
  const services = compose.services as Obj;
  for (const name of ['postgres', 'server-a', 'server-b', 'worker', 'loadbalancer']) assert.ok(services[name], name);
  assert.ok(compose.volumes && 'shared' in compose.volumes && 'pgdata' in compose.volumes);
  const clinvqa = ['server-a', 'server-b', 'worker'].map((n) => services[n] as Obj);
  const urls = new Set(clinvqa.map((s) => s.environment.CLINVQA_DATABASE_URL));
  assert.equal(urls.size, 1);
  assert.match([...urls][0], /^postgres:\/\/clinvqa:.*@postgres:5432\/clinvqa$/);
  for (const s of clinvqa) {
    assert.equal(s.environment.CLINVQA_DATA_DIR, '/var/lib/clinvqa');
    assert.equal(s.environment.CLINVQA_MODELS_DIR, undefined, 'shipped models stay in the image; fine-tuned ones go to <data dir>/models on the shared volume');
    assert.ok(s.environment.CLINVQA_API_KEYS);
    assert.equal(s.environment.CLINVQA_JOB_LEASE_S, '60');
    assert.ok(s.volumes.includes('shared:/var/lib/clinvqa'));
    assert.equal(s.depends_on.postgres.condition, 'service_healthy');
  }
  assert.deepEqual(services['server-a'].command, ['npm', 'start']);
  assert.deepEqual(services.worker.command, ['npm', 'run', 'worker']);
  assert.notEqual(services['server-a'].environment.CLINVQA_INSTANCE_ID, services['server-b'].environment.CLINVQA_INSTANCE_ID);
  assert.match(services['server-a'].healthcheck.test.join(' '), /\/readyz/);
  const nginx = readFileSync('deploy/nginx.conf', 'utf8');
  assert.match(nginx, /server server-a:8080/);
  assert.match(nginx, /server server-b:8080/);
  assert.ok(services.loadbalancer.volumes.some((v: string) => v.startsWith('./nginx.conf:')));
});

test('kubernetes: server Deployment with /readyz and /healthz probes, worker Deployment, Service, RWX PVC, env from the Secret', () => {
  const docs = parseAllDocuments(readFileSync('deploy/kubernetes/clinvqa.yaml', 'utf8')).map((d) => {
    assert.deepEqual(d.errors, []);
    return d.toJS() as Obj;
  });
  const byKind = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name) as Obj;
  const server = byKind('Deployment', 'clinvqa-server');
  const worker = byKind('Deployment', 'clinvqa-worker');
  const service = byKind('Service', 'clinvqa');
  const pvc = byKind('PersistentVolumeClaim', 'clinvqa-shared');
  const secret = byKind('Secret', 'clinvqa');
  for (const x of [server, worker, service, pvc, secret]) assert.ok(x);
  assert.ok(server.spec.replicas >= 2);
  assert.deepEqual(pvc.spec.accessModes, ['ReadWriteMany']);
  assert.ok(secret.stringData['database-url'] && secret.stringData['api-keys']);
  const [serverC] = server.spec.template.spec.containers as Obj[];
  const [workerC] = worker.spec.template.spec.containers as Obj[];
  assert.deepEqual(serverC!.command, ['npm', 'start']);
  assert.deepEqual(workerC!.command, ['npm', 'run', 'worker']);
  assert.equal(serverC!.readinessProbe.httpGet.path, '/readyz');
  assert.equal(serverC!.livenessProbe.httpGet.path, '/healthz');
  for (const [deployment, container] of [
    [server, serverC],
    [worker, workerC],
  ] as [Obj, Obj][]) {
    const env = new Map((container.env as Obj[]).map((e) => [e.name, e]));
    assert.equal(env.get('CLINVQA_DATABASE_URL')!.valueFrom.secretKeyRef.key, 'database-url');
    assert.equal(env.get('CLINVQA_DATA_DIR')!.value, '/var/lib/clinvqa');
    assert.equal(env.get('CLINVQA_JOB_LEASE_S')!.value, '60');
    assert.ok(container.volumeMounts.some((m: Obj) => m.name === 'shared' && m.mountPath === '/var/lib/clinvqa'));
    assert.equal(deployment.spec.template.spec.volumes[0].persistentVolumeClaim.claimName, 'clinvqa-shared');
    assert.deepEqual(deployment.spec.selector.matchLabels, deployment.spec.template.metadata.labels);
  }
  assert.deepEqual(service.spec.selector, server.spec.template.metadata.labels);
  assert.equal(service.spec.ports[0].targetPort, 'http');
});
