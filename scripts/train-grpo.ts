// npm run train:grpo -- --config <file.yaml>   (resumes automatically from the run's last checkpoint)
import { GRPO_DEFAULTS } from '../src/training/grpo/grpo-config.ts';
import { trainGrpo } from '../src/training/grpo/grpo-trainer.ts';
import { runTrainerCli } from './lib/trainer-cli.ts';

await runTrainerCli({
  script: 'train:grpo',
  defaults: GRPO_DEFAULTS,
  train: (config) => trainGrpo(config),
  summary: (r) => ({ steps: r.steps, wall_seconds: Math.round(r.wallSeconds), package: r.packageDir, validation: r.validation }),
});
