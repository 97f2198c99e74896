// npm run train:sft -- --config <file.yaml>   (resumes automatically from the run's last checkpoint)
import { parseArgs } from 'node:util';
import { readConfigFile, withDefaults } from '../src/training/config-file.ts';
import { SFT_DEFAULTS } from '../src/training/sft-config.ts';
import { trainSft } from '../src/training/sft-trainer.ts';

const { values } = parseArgs({ options: { config: { type: 'string' } } });
if (!values.config) {
  console.error('usage: npm run train:sft -- --config <file.yaml>');
  process.exit(2);
}
const cfg = withDefaults(SFT_DEFAULTS, await readConfigFile(values.config), values.config);
const r = await trainSft(cfg);
console.log(JSON.stringify({ steps: r.steps, final_loss: r.finalLoss, wall_seconds: Math.round(r.wallSeconds), package: r.packageDir, validation: r.validation }));
