// npm run train:grpo -- --config <file.yaml>   (resumes automatically from the run's last checkpoint)
import { parseArgs } from 'node:util';
import { readConfigFile, withDefaults } from '../src/training/config-file.ts';
import { GRPO_DEFAULTS } from '../src/training/grpo/grpo-config.ts';
import { trainGrpo } from '../src/training/grpo/grpo-trainer.ts';

const { values } = parseArgs({ options: { config: { type: 'string' } } });
if (!values.config) {
  console.error('usage: npm run train:grpo -- --config <file.yaml>');
  process.exit(2);
}
const cfg = withDefaults(GRPO_DEFAULTS, await readConfigFile(values.config), values.config);
const r = await trainGrpo(cfg);
console.log(JSON.stringify({ steps: r.steps, wall_seconds: Math.round(r.wallSeconds), package: r.packageDir, validation: r.validation }));
