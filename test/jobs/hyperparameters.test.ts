// Fine-tune hyperparameters: defaults that pass the GRPO config check; a request may set the GRPO
// knobs and max_steps, never paths or threads; every wrong value is reported with its path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FINE_TUNE_DEFAULTS, HyperparameterError, resolveHyperparameters } from '../../src/jobs/hyperparameters.ts';
import { GRPO_DEFAULTS, validateGrpoConfig } from '../../src/training/grpo/grpo-config.ts';

test('no hyperparameters gives working defaults', () => {
  const hp = resolveHyperparameters(undefined);
  assert.deepEqual(hp, FINE_TUNE_DEFAULTS);
  assert.doesNotThrow(() => validateGrpoConfig({ ...GRPO_DEFAULTS, ...hp }));
  assert.ok(!('out' in hp) && !('init' in hp) && !('threads' in hp));
});

test('GRPO knob names and max_steps override the defaults', () => {
  const hp = resolveHyperparameters({ max_steps: 7, loss_type: 'dapo', epsilon_high: 0.28, reward_funcs: ['accuracy', 'length'], length_mode: 'cwr', beta: 0 });
  assert.equal(hp.max_steps, 7);
  assert.equal(hp.loss_type, 'dapo');
  assert.equal(hp.epsilon_high, 0.28);
  assert.deepEqual(hp.reward_funcs, ['accuracy', 'length']);
  assert.equal(hp.num_generations, FINE_TUNE_DEFAULTS.num_generations);
});

test('every bad entry is reported by path', () => {
  const problems = (given: unknown) => {
    try {
      resolveHyperparameters(given);
    } catch (error) {
      assert.ok(error instanceof HyperparameterError);
      return error.problems.map((p) => p.path);
    }
    assert.fail('expected a HyperparameterError');
  };
  assert.deepEqual(problems([1, 2]), ['/hyperparameters']);
  assert.deepEqual(problems({ max_steps: 0, num_generations: 2.5, learning_rate: '1e-4', init: 'scratch', out: '/tmp/x', threads: 16, bogus: true }).sort(), [
    '/hyperparameters/bogus',
    '/hyperparameters/init',
    '/hyperparameters/learning_rate',
    '/hyperparameters/max_steps',
    '/hyperparameters/num_generations',
    '/hyperparameters/out',
    '/hyperparameters/threads',
  ]);
  // cross-field rules come from the GRPO config's own validation
  assert.deepEqual(problems({ reward_funcs: ['accuracy'], reward_weights: [1, 2] }), ['/hyperparameters']);
  assert.deepEqual(problems({ loss_type: 'ppo' }), ['/hyperparameters']);
});
