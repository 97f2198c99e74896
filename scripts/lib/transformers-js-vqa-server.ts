// The peer for `npm run bench:peer`: a Qwen2-VL visual-question-answering HTTP server written the
// way a Node developer writes one with transformers.js (the model card's snippet behind an express
// route): processor and model loaded once, each request processed and generated as it comes, no
// batching. Same request/response shape as our POST /v1/vqa (JSON, base64 image), so one load
// generator drives both.
//
//   node --import tsx scripts/lib/transformers-js-vqa-server.ts --model <transformers.js folder> --port <n> --threads <n>
//
// Prints `listening <port>` once the model is loaded.
import express from 'express';
import { parseArgs } from 'node:util';
import { AutoProcessor, Qwen2VLForConditionalGeneration, RawImage, env, type Tensor } from '@huggingface/transformers';

const { values } = parseArgs({
  options: { model: { type: 'string' }, port: { type: 'string', default: '0' }, threads: { type: 'string', default: '1' } },
});
if (!values.model) {
  console.error('usage: transformers-js-vqa-server.ts --model <dir> [--port <n>] [--threads <n>]');
  process.exit(2);
}
env.allowRemoteModels = false;
const threads = Number(values.threads);
const processor = await AutoProcessor.from_pretrained(values.model, { local_files_only: true });
const model = await Qwen2VLForConditionalGeneration.from_pretrained(values.model, {
  dtype: 'fp32',
  local_files_only: true,
  session_options: { intraOpNumThreads: threads, interOpNumThreads: 1 },
});

const app = express();
app.use(express.json({ limit: '20mb' }));
app.post('/v1/vqa', async (req, res) => {
  try {
    const { image, question, max_tokens: maxTokens = 64 } = req.body as { image: string; question: string; max_tokens?: number };
    const raw = await RawImage.fromBlob(new Blob([Buffer.from(image, 'base64')]));
    const conversation = [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] }];
    const text = processor.apply_chat_template(conversation as never, { add_generation_prompt: true }) as string;
    const inputs = await processor(text, raw);
    const output = (await model.generate({ ...inputs, max_new_tokens: maxTokens, do_sample: false } as never)) as Tensor;
    const promptLength = (inputs.input_ids as Tensor).dims.at(-1)!;
    const generated = output.slice(null, [promptLength, output.dims.at(-1)!]);
    const [answer] = processor.batch_decode(generated, { skip_special_tokens: true });
    const completionTokens = generated.dims.at(-1)!;
    res.json({ answer, usage: { prompt_tokens: promptLength, completion_tokens: completionTokens, total_tokens: promptLength + completionTokens } });
  } catch (error) {
    res.status(500).json({ error: (error as Error).message });
  }
});
const server = app.listen(Number(values.port), () => {
  const address = server.address();
  console.log(`listening ${typeof address === 'object' && address ? address.port : values.port}`);
});
