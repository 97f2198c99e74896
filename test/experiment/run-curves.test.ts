// Curves read back from a trainer's log.jsonl: a resumed run's repeated steps count once (the last
// record wins), non-step records and a line cut short by a killed process are skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRunLog } from '../../src/experiment/run-curves.ts';

const step = (n: number, reward: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    time: 't',
    kind: 'step',
    step: n,
    total: 4,
    reward,
    completion_length: 20 + n,
    step_ms: 1000,
    'rewards/accuracy/mean': reward / 2,
    ...extra,
  });

test('steps are deduplicated (last wins), sorted, and garbage is skipped', () => {
  const log = [
    JSON.stringify({ kind: 'info', message: 'grpo: …' }),
    step(1, 0.1),
    step(2, 0.2),
    step(3, 0.3),
    '{"kind":"step","step":4,"rew', // killed mid-write
    JSON.stringify({ kind: 'info', message: 'resuming' }),
    step(3, 0.35),
    step(4, 0.4, { 'rewards/accuracy/mean': undefined }),
    '',
  ].join('\n');
  const pts = parseRunLog(log);
  assert.deepEqual(
    pts.map((p) => p.step),
    [1, 2, 3, 4],
  );
  assert.equal(pts[2].reward, 0.35);
  assert.equal(pts[2].accuracyReward, 0.175);
  assert.equal(pts[3].accuracyReward, null);
  assert.equal(pts[0].completionLength, 21);
  assert.equal(pts[0].kl, null);
  assert.equal(parseRunLog(step(1, 0.5, { kl: 0.02 }))[0].kl, 0.02);
  assert.equal(
    pts.reduce((a, p) => a + p.stepMs, 0),
    4000,
  );
  assert.deepEqual(parseRunLog(''), []);
});
