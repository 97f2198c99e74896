// What the README says about transformers.js against Hugging Face's Python, pinned on the exported
// reference model: the chat template, tokenizer and image-token expansion give our prompt ids; for a
// text-only prompt its rope_delta is max+1+len where Python (and we) have max+1−len. If the second
// test fails, transformers.js changed: update the README's table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AutoProcessor, Qwen2VLForConditionalGeneration, RawImage, Tensor, env } from '@huggingface/transformers';
import { buildPromptIds, questionTurns } from '../../../../src/engine/architectures/qwen2-vl/prompt.ts';
import { ropeIndex } from '../../../../src/engine/architectures/qwen2-vl/rope-index.ts';
import { readQwen2VLFolderF32 } from '../../../../src/engine/architectures/qwen2-vl/weights.ts';
import { writeTransformersJsFolder } from '../../../../src/engine/architectures/qwen2-vl/transformers-js.ts';
import { readHfFolder } from '../../../../src/hf/folder.ts';

const REFERENCE = resolve('../shared/reference/qwen2-vl-tiny');
env.allowRemoteModels = false;

test('transformers.js and we: same prompt ids and grid for an image question; text-only rope_delta differs (theirs max+1+len)', async () => {
  const { config, weights } = await readQwen2VLFolderF32(REFERENCE);
  const folder = await readHfFolder(REFERENCE);
  const dir = await mkdtemp(join(tmpdir(), 'tjs-diff-'));
  try {
    await writeTransformersJsFolder(dir, { sourceDir: REFERENCE, rawConfig: folder.config, config, weights });
    const processor = await AutoProcessor.from_pretrained(dir, { local_files_only: true });
    const source = { render: folder.chatTemplate.render.bind(folder.chatTemplate), encode: folder.tokenizer.encode.bind(folder.tokenizer) };
    const question = 'What modality is used to take this image?';

    // Image question: template, tokenizer, expansion (24 image tokens for the golden image).
    const kase = JSON.parse(await readFile(join(REFERENCE, 'golden/case.json'), 'utf8'));
    const ours = buildPromptIds(source, questionTurns(question, 1), { imageTokenId: config.tokens.imageTokenId, imageTokenCounts: [kase.num_image_tokens] });
    const text = processor.apply_chat_template([{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: question }] }] as never, {
      add_generation_prompt: true,
    }) as string;
    const inputs = await processor(text, await RawImage.fromBlob(new Blob([await readFile(join(REFERENCE, 'golden/image.png'))])));
    assert.deepEqual(((inputs.input_ids as Tensor).tolist() as bigint[][])[0].map(Number), ours);
    assert.deepEqual(((inputs.image_grid_thw as Tensor).tolist() as bigint[][])[0].map(Number), kase.image_grid_thw[0]);

    // Text-only prompt: Hugging Face's rope_delta is max+1−len = 0 without padding.
    const ids = buildPromptIds(source, [{ role: 'user', content: question }], { imageTokenId: config.tokens.imageTokenId, imageTokenCounts: [] });
    const L = ids.length;
    assert.equal(
      ropeIndex(ids, [], { imageTokenId: config.tokens.imageTokenId, visionStartTokenId: config.tokens.visionStartTokenId, spatialMergeSize: 2 }).ropeDelta,
      0,
    );
    const model = await Qwen2VLForConditionalGeneration.from_pretrained(dir, { dtype: 'fp32', local_files_only: true });
    try {
      const getRopeIndex = (model as unknown as { get_rope_index(i: Tensor, g: null, v: null, m: Tensor): [Tensor, Tensor] }).get_rope_index.bind(model);
      const [, delta] = getRopeIndex(
        new Tensor('int64', BigInt64Array.from(ids, BigInt), [1, L]),
        null,
        null,
        new Tensor('int64', new BigInt64Array(L).fill(1n), [1, L]),
      );
      assert.equal(Number((delta.data as BigInt64Array)[0]), 2 * L, 'transformers.js text-only rope_delta (max+1+len); if this changed, update the README');
    } finally {
      await model.dispose();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
