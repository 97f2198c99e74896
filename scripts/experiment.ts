// npm run experiment -- --config experiments/paper.yaml [--report-only]
// Runs the rows of an experiment file (resuming unfinished ones, reusing finished ones) and writes
// the report and charts it names. --report-only writes them from what has finished so far.
import { parseArgs } from 'node:util';
import { readExperimentConfig } from '../src/experiment/experiment-config.ts';
import { runExperiment, writeExperimentReport } from '../src/experiment/run-experiment.ts';

const { values } = parseArgs({
  options: { config: { type: 'string' }, 'report-only': { type: 'boolean', default: false }, quiet: { type: 'boolean', default: false } },
});
if (!values.config) {
  console.error('usage: npm run experiment -- --config <experiment.yaml> [--report-only] [--quiet]');
  process.exit(2);
}
const cfg = await readExperimentConfig(values.config);
const result = await runExperiment(cfg, { configPath: values.config, train: !values['report-only'], quiet: values.quiet });
const written = await writeExperimentReport(result);
for (const r of result.rows) {
  const a = r.metrics?.all;
  console.log(
    `${r.row.id.padEnd(24)} accuracy ${a?.accuracy == null ? 'not run' : (a.accuracy * 100).toFixed(1)}  grounding ${a?.grounding_rate == null ? '–' : (a.grounding_rate * 100).toFixed(1)}`,
  );
}
console.log(`wrote ${written.join(', ')}${result.complete ? '' : ' (partial: some rows have not finished)'}`);
