// npm run train:sft -- --config <file.yaml>   (resumes automatically from the run's last checkpoint)
import { SFT_DEFAULTS } from '../src/training/sft/sft-config.ts';
import { trainSft } from '../src/training/sft/sft-trainer.ts';
import { runTrainerCli } from './lib/trainer-cli.ts';

await runTrainerCli({
  script: 'train:sft',
  defaults: SFT_DEFAULTS,
  train: (config) => trainSft(config),
  summary: (r) => ({ steps: r.steps, final_loss: r.finalLoss, wall_seconds: Math.round(r.wallSeconds), package: r.packageDir, validation: r.validation }),
});
