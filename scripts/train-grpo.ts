// npm run train:grpo -- --config <file.yaml>   (resumes automatically from the run's last checkpoint)
// With `base: <HF folder>` (qwen2_vl) and `method: {type: lora, r, lora_alpha, target_modules}` or
// `{type: full}`, the run fine-tunes that folder and writes a PEFT adapter or a full HF folder to package_dir.
import { GRPO_DEFAULTS, validateGrpoConfig } from '../src/training/grpo/grpo-config.ts';
import { trainGrpo } from '../src/training/grpo/grpo-trainer.ts';
import { trainGrpoOnHfFolder } from '../src/training/grpo/hf-grpo-trainer.ts';
import { parseTrainMethod } from '../src/training/train-method.ts';
import { runTrainerCli } from './lib/trainer-cli.ts';

await runTrainerCli({
  script: 'train:grpo',
  defaults: GRPO_DEFAULTS,
  train: async (config) => {
    if (!config.base) {
      const r = await trainGrpo(config);
      return { steps: r.steps, wall_seconds: Math.round(r.wallSeconds), package: r.packageDir, validation: r.validation };
    }
    validateGrpoConfig(config);
    if (!config.package_dir) throw new Error('package_dir: where the adapter (or fine-tuned folder) is written');
    const started = performance.now();
    const r = await trainGrpoOnHfFolder({ ...config, method: parseTrainMethod(config.method) });
    return { steps: r.steps, wall_seconds: Math.round((performance.now() - started) / 1000), output: r.outputDir, reward_curve: r.rewardCurve };
  },
  summary: (r) => r,
});
