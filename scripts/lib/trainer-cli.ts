// What every trainer script does: read `--config <file.yaml>`, overlay it on the trainer's defaults
// (unknown keys refused), train (resuming from the run's last checkpoint), print one JSON summary line.
import { parseArgs } from 'node:util';
import { readConfigFile, withDefaults } from '../../src/training/config-file.ts';

export interface TrainerCli<C extends object, R> {
  /** The npm script name, for the usage line (e.g. `train:sft`). */
  script: string;
  defaults: C;
  train(config: C): Promise<R>;
  summary(result: R): Record<string, unknown>;
}

export async function runTrainerCli<C extends object, R>(cli: TrainerCli<C, R>, argv = process.argv.slice(2)): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' } } });
  if (!values.config) {
    console.error(`usage: npm run ${cli.script} -- --config <file.yaml>`);
    process.exit(2);
  }
  const config = withDefaults(cli.defaults, await readConfigFile(values.config), values.config);
  const result = await cli.train(config);
  console.log(JSON.stringify(cli.summary(result)));
}
