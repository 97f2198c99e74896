// Our side of `npm run bench:peer --ours engine`: a Qwen2-VL Hugging Face folder served by our
// runtime directly (src/runtime/qwen2-vl: our processor, template, serving graphs and batched
// generation) behind our dynamic batcher, without the rest of the server (keys, A/B table, audit,
// OpenAPI validation). The same request/response shape as POST /v1/vqa (JSON, base64 image).
//
//   node --import tsx scripts/lib/engine-vqa-server.ts --model <HF folder> --data-dir <dir> --port <n> --threads <n> [--max-batch 16]
//
// Prints `listening <port>` once the model is loaded.
import express from 'express';
import { parseArgs } from 'node:util';
import { Batcher } from '../../src/runtime/batcher.ts';
import { loadQwen2VlRuntime } from '../../src/runtime/qwen2-vl/runtime.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    'data-dir': { type: 'string' },
    port: { type: 'string', default: '0' },
    threads: { type: 'string', default: '1' },
    'max-batch': { type: 'string', default: '16' },
    'max-wait-ms': { type: 'string', default: '10' },
  },
});
if (!values.model || !values['data-dir']) {
  console.error('usage: engine-vqa-server.ts --model <dir> --data-dir <dir> [--port <n>] [--threads <n>] [--max-batch <n>]');
  process.exit(2);
}
const maxBatch = Number(values['max-batch']);
const runtime = await loadQwen2VlRuntime(values.model, {
  executionProviders: ['cpu'],
  intraOpThreads: Number(values.threads),
  dataDir: values['data-dir'],
  maxBatch,
});
const batcher = new Batcher((reqs) => runtime.generateBatch(reqs), {
  enabled: true,
  maxBatch,
  maxWaitMs: Number(values['max-wait-ms']),
  maxQueue: 1024,
  timeoutMs: 600_000,
});
const LIMITS = { maxBytes: 20 << 20, maxInputPixels: 50_000_000 };

const app = express();
app.use(express.json({ limit: '30mb' }));
app.post('/v1/vqa', async (req, res) => {
  try {
    const {
      image,
      question,
      max_tokens: maxTokens = 256,
      temperature = 0,
    } = req.body as { image: string; question: string; max_tokens?: number; temperature?: number };
    const prepared = await runtime.prepareImage(new Uint8Array(Buffer.from(image, 'base64')), LIMITS);
    const { result } = await batcher.enqueue({ patches: prepared.patches, gridThw: prepared.gridThw, question, params: { temperature, topP: 1, maxTokens } })
      .done;
    res.json({
      answer: result.answer,
      usage: { prompt_tokens: result.promptTokens, completion_tokens: result.completionTokens, total_tokens: result.promptTokens + result.completionTokens },
    });
  } catch (error) {
    res.status(500).json({ error: (error as Error).message });
  }
});
const server = app.listen(Number(values.port), () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address ? address.port : values.port}`);
});
