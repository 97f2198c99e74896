// npm run bench:finetune-2b [-- --keep <dir>] [--text-layers n] [--vision-depth n] [--image 448] [--steps 2]
//
// Two GRPO LoRA steps on a random-weight folder of Qwen2-VL-2B's shapes (BF16 shards, read back as
// float32): G = 4 completions of one image prompt, 32 new tokens each, LoRA r = 16 on every text
// attention and MLP projection. Prints the peak RSS and the seconds of each step (rollout, scoring,
// backward). --text-layers / --vision-depth build a shallower model of the same widths (for a
// machine that cannot spare the memory; per-layer cost is linear, so the full figure extrapolates).
import { mkdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { parseQwen2VLConfig } from '../src/engine/architectures/qwen2-vl/config.ts';
import { paramCount } from '../src/engine/architectures/qwen2-vl/params.ts';
import { writeRandomQwen2VLFolder } from '../src/engine/architectures/qwen2-vl/random-folder.ts';
import { parseLoraConfig } from '../src/engine/lora/config.ts';
import { AdamW } from '../src/engine/optim/adamw.ts';
import { grpoPolicyStep, type GrpoStepConfig } from '../src/training/grpo/policy-step.ts';
import { Qwen2VLPolicy } from '../src/training/qwen2-vl-policy.ts';
import { loadQwen2VLBase } from '../src/training/qwen2-vl-base.ts';
import { QWEN2_VL_2B_CONFIG } from './lib/qwen2-vl-2b.ts';

const { values } = parseArgs({
  options: {
    keep: { type: 'string' },
    'text-layers': { type: 'string' },
    'vision-depth': { type: 'string' },
    image: { type: 'string', default: '448' },
    steps: { type: 'string', default: '2' },
    threads: { type: 'string', default: '0' },
  },
});
const gb = (b: number) => `${(b / 1024 ** 3).toFixed(2)} GB`;
const peakRss = () => process.resourceUsage().maxRSS * 1024;
const now = () => performance.now();

const raw = structuredClone(QWEN2_VL_2B_CONFIG) as typeof QWEN2_VL_2B_CONFIG;
if (values['text-layers']) raw.num_hidden_layers = Number(values['text-layers']);
if (values['vision-depth']) raw.vision_config.depth = Number(values['vision-depth']);
const config = parseQwen2VLConfig(raw);
const shape = `${config.text.numLayers} text layers, vision depth ${config.vision.depth}`;
const root = values.keep ?? (await mkdtemp(join(tmpdir(), 'bench-finetune-2b-')));
const folder = join(root, `hf-${config.text.numLayers}-${config.vision.depth}`);
await mkdir(root, { recursive: true });
console.log(`Qwen2-VL-2B widths, ${shape}: ${(paramCount(config) / 1e9).toFixed(2)} B parameters, float32 ${gb(paramCount(config) * 4)}`);
try {
  if (
    !(await stat(join(folder, 'config.json')).then(
      () => true,
      () => false,
    ))
  ) {
    const t = now();
    await writeRandomQwen2VLFolder(folder, raw, { dtype: 'BF16', shardBytes: 2 * 1024 ** 3, seed: 3 });
    console.log(`wrote the random BF16 folder in ${((now() - t) / 1000).toFixed(1)} s`);
  }
  const { weights: base } = await loadQwen2VLBase(folder, raw);
  console.log(`base read as float32, peak rss ${gb(peakRss())}`);
  const lora = parseLoraConfig({
    r: 16,
    lora_alpha: 32,
    lora_dropout: 0.05,
    target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'],
  });
  const t0 = now();
  const policy = await Qwen2VLPolicy.create({
    config,
    base,
    method: { type: 'lora', lora },
    releaseBase: true,
    seed: 1,
    stopIds: config.tokens.eosTokenIds,
    padId: 151643,
    threads: Number(values.threads),
  });
  const adapterParams = [...policy.trainable.values()].reduce((n, v) => n + v.length, 0);
  console.log(`sessions built in ${((now() - t0) / 1000).toFixed(1)} s; adapter ${(adapterParams / 1e6).toFixed(2)} M parameters; peak rss ${gb(peakRss())}`);

  const side = Number(values.image);
  const grid: [number, number, number] = [1, side / 14, side / 14];
  const patches = grid[0] * grid[1] * grid[2];
  const tk = config.tokens;
  const prompt = {
    promptIds: [
      151644,
      872,
      198,
      tk.visionStartTokenId,
      ...new Array<number>(patches / 4).fill(tk.imageTokenId),
      tk.visionEndTokenId,
      3838,
      6577,
      374,
      419,
      30,
      151645,
      198,
      151644,
      77091,
      198,
    ],
    images: { pixelValues: Float32Array.from({ length: patches * config.vision.patchDim }, (_, i) => Math.sin(i * 0.37) * 1.5), grids: [grid] },
  };
  const cfg: GrpoStepConfig = {
    num_generations: 4,
    num_iterations: 1,
    max_completion_length: 32,
    temperature: 1,
    top_p: 1,
    loss_type: 'dr_grpo',
    scale_rewards: 'none',
    epsilon: 0.2,
    epsilon_high: null,
    beta: 0.04,
    mask_truncated_completions: false,
    grad_clip: 1,
    seed: 1,
  };
  const opt = new AdamW(policy.trainable, { weightDecay: 0 });
  const reward = { name: 'distinct', weight: 1, fn: (c: number[][]) => c.map((t) => new Set(t).size / 32) };
  const seconds: number[] = [];
  for (let step = 0; step < Number(values.steps); step++) {
    const t = now();
    const r = await grpoPolicyStep(policy, opt, [prompt], [reward], cfg, step, () => 1e-4);
    seconds.push((now() - t) / 1000);
    console.log(
      `step ${step + 1}: ${seconds.at(-1)!.toFixed(1)} s (rollout ${(r.metrics.rollout_ms! / 1000).toFixed(1)} s, ${r.metrics.completion_length} tokens/completion), peak rss ${gb(peakRss())}`,
    );
  }
  await policy.release();
  console.log(
    `bench:finetune-2b (${shape}, image ${side}px = ${patches / 4} image tokens, G=4, 32 new tokens, LoRA r=16) peak_rss=${gb(peakRss())} seconds_per_step=${(seconds.reduce((a, b) => a + b, 0) / seconds.length).toFixed(1)}`,
  );
} finally {
  if (!values.keep) await rm(root, { recursive: true, force: true });
}
