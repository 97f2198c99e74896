// Chooses the `small` preset by measurement: each candidate preset is trained by SFT with the same
// step budget and data, then scored on (a sample of) the validation splits, with its single-answer
// CPU latency measured on the same machine in the same run.
//   node --import tsx scripts/size-sweep.ts [--presets mini,small,base] [--steps 400] [--eval 400]
import { parseArgs } from 'node:util';
import { SFT_DEFAULTS } from '../src/training/sft/sft-config.ts';
import { trainSft } from '../src/training/sft/sft-trainer.ts';

const { values } = parseArgs({
  options: { presets: { type: 'string', default: 'mini,small,base' }, steps: { type: 'string', default: '400' }, eval: { type: 'string', default: '400' } },
});
const rows: string[] = [];
for (const preset of values.presets!.split(',')) {
  const r = await trainSft({
    ...SFT_DEFAULTS,
    preset,
    max_steps: Number(values.steps),
    epochs: 100,
    warmup: 50,
    checkpoint_every: 100000,
    eval_samples: Number(values.eval),
    out: `runs/size-sweep/${preset}`,
    package_dir: '',
  });
  const all = r.validation!.all;
  const params = [...r.weights.values()].reduce((a, w) => a + w.length, 0);
  rows.push(
    `| ${preset} | ${(params / 1e6).toFixed(2)} M | ${(100 * all.accuracy!).toFixed(1)}% | ${(100 * all.closed_accuracy!).toFixed(1)}% | ${(100 * all.open_accuracy!).toFixed(1)}% | ${all.latency_ms_p50!.toFixed(0)} ms | ${((r.wallSeconds / Number(values.steps)) * 1000).toFixed(0)} ms |`,
  );
  console.log(rows[rows.length - 1]);
}
console.log('| preset | parameters | val accuracy | closed | open | single answer p50 | train ms/step |\n|---|---|---|---|---|---|---|');
for (const row of rows) console.log(row);
