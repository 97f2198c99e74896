// Sticky routing must put a client on the same variant on every replica: the point is a hash of
// (client id, table version), so another process (another replica) must compute the same points.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { stickyPoint } from '../../src/routing/sticky-router.ts';

test('stickyPoint is the same in a separate process', () => {
  const clients = ['c1', 'ward-7/bed-3', 'ünïcode-client', ''.padEnd(200, 'x')];
  const script = `import { stickyPoint } from './src/routing/sticky-router.ts';
    const clients = ${JSON.stringify(clients)};
    process.stdout.write(JSON.stringify(clients.flatMap((c) => [1, 2, 97].map((v) => stickyPoint(c, v)))));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, TZ: 'Pacific/Kiritimati', LANG: 'C' },
  });
  const here = clients.flatMap((c) => [1, 2, 97].map((v) => stickyPoint(c, v)));
  assert.deepEqual(JSON.parse(out), here);
  assert.equal(new Set(here).size, here.length, 'different clients and versions land on different points');
});
