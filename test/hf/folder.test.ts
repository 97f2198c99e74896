import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { pickArchitecture } from '../../src/hf/architecture-choice.ts';
import { HfFolderError } from '../../src/hf/errors.ts';
import { readHfFolder } from '../../src/hf/folder.ts';
import { copyReference, editJson, REFERENCE_DIR } from '../support/hf-folders.ts';

// The README's rendering of one user turn with an image and a question.
const RENDERED =
  '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' +
  '<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What modality is used to take this image?<|im_end|>\n' +
  '<|im_start|>assistant\n';
const QUESTION = [
  { role: 'user' as const, content: [{ type: 'image' as const }, { type: 'text' as const, text: 'What modality is used to take this image?' }] },
];

const ARCHITECTURES = [{ modelType: 'qwen2_vl', hfClasses: ['Qwen2VLForConditionalGeneration'] }];

async function rejects(work: Promise<unknown>, pattern: RegExp): Promise<void> {
  let caught: unknown;
  try {
    await work;
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof HfFolderError, `expected an HfFolderError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
}

describe('readHfFolder', () => {
  const made: { dispose(): Promise<void> }[] = [];
  const fresh = async () => {
    const folder = await copyReference();
    made.push(folder);
    return folder.dir;
  };
  after(async () => Promise.all(made.map((f) => f.dispose())));

  it('reads the reference folder: template rendered as the README states, tokens, generation defaults', async () => {
    const folder = await readHfFolder(REFERENCE_DIR);
    assert.equal(folder.config.model_type, 'qwen2_vl');
    // chat_template.json wins over tokenizer_config.json, as in transformers' processor
    assert.match(folder.chatTemplate.source, /chat_template\.json$/);
    const text = folder.chatTemplate.render(QUESTION, { addGenerationPrompt: true });
    assert.equal(text, RENDERED);
    const ids = folder.tokenizer.encode(text);
    const at = ids.indexOf(505);
    assert.deepEqual(ids.slice(at, at + 3), [505, 508, 506]);
    assert.equal(ids[0], 497);
    assert.equal(folder.tokenizer.decode(ids), text);
    assert.deepEqual(folder.tokenizer.specialTokens.eos, { token: '<|im_end|>', id: 498 });
    assert.deepEqual(folder.tokenizer.specialTokens.pad, { token: '<|endoftext|>', id: 496 });
    assert.equal(folder.tokenizer.specialTokens.bos, undefined);
    assert.equal(folder.tokenizer.tokenId('<|image_pad|>'), 508);
    assert.equal(folder.tokenizer.isSpecial(508), true);
    assert.equal(folder.tokenizer.decode([80, 505, 508], { skipSpecial: true }), folder.tokenizer.decode([80]));
    assert.deepEqual(folder.generation.eosTokenIds, [498, 496]);
    assert.equal(folder.generation.padTokenId, 496);
    assert.equal(folder.generation.temperature, 0);
    assert.equal(folder.preprocessor?.max_pixels, 20000);
    assert.equal(pickArchitecture(REFERENCE_DIR, folder.config, ARCHITECTURES), ARCHITECTURES[0]);
  });

  it('finds the template in chat_template.jinja first, then tokenizer_config.json; add_vision_id works', async () => {
    const dir = await fresh();
    const template = JSON.parse(await readFile(path.join(dir, 'chat_template.json'), 'utf8')).chat_template as string;
    await rm(path.join(dir, 'chat_template.json'));
    let folder = await readHfFolder(dir);
    assert.match(folder.chatTemplate.source, /tokenizer_config\.json$/);
    assert.equal(folder.chatTemplate.render(QUESTION, { addGenerationPrompt: true }), RENDERED);
    await writeFile(path.join(dir, 'chat_template.jinja'), template);
    folder = await readHfFolder(dir);
    assert.match(folder.chatTemplate.source, /chat_template\.jinja$/);
    const withId = folder.chatTemplate.render(QUESTION, { addGenerationPrompt: false, extra: { add_vision_id: true } });
    assert.match(withId, /user\nPicture 1: <\|vision_start\|>/);
    assert.doesNotMatch(withId, /assistant\n$/);
  });

  it('generation_config.json: one eos id or a list; sampling defaults; absent file falls back to config.json', async () => {
    const dir = await fresh();
    await editJson(path.join(dir, 'generation_config.json'), (g) => {
      g.eos_token_id = 498;
      g.do_sample = true;
      g.temperature = 0.7;
      g.top_p = 0.9;
      g.top_k = 20;
    });
    let folder = await readHfFolder(dir);
    assert.deepEqual(folder.generation.eosTokenIds, [498]);
    assert.equal(folder.generation.temperature, 0.7);
    assert.equal(folder.generation.topP, 0.9);
    assert.equal(folder.generation.topK, 20);
    await rm(path.join(dir, 'generation_config.json'));
    folder = await readHfFolder(dir);
    assert.deepEqual(folder.generation.eosTokenIds, [498]);
    assert.equal(folder.generation.bosTokenId, 496);
    assert.equal(folder.generation.temperature, 0);
  });

  describe('bad folders name the file', () => {
    it('missing or truncated config.json', async () => {
      const dir = await fresh();
      const config = await readFile(path.join(dir, 'config.json'), 'utf8');
      await writeFile(path.join(dir, 'config.json'), config.slice(0, 100));
      await rejects(readHfFolder(dir), /qwen2-vl-tiny\/config\.json: not valid JSON \(truncated\?\)/);
      await rm(path.join(dir, 'config.json'));
      await rejects(readHfFolder(dir), /qwen2-vl-tiny\/config\.json: missing file/);
    });

    it('unsupported architecture', async () => {
      const dir = await fresh();
      const config = { model_type: 'llama', architectures: ['LlamaForCausalLM'] };
      assert.throws(
        () => pickArchitecture(dir, config, ARCHITECTURES),
        (error: unknown) =>
          error instanceof HfFolderError &&
          /config\.json: unsupported architecture: model_type "llama", architectures \["LlamaForCausalLM"\]; this server supports qwen2_vl \(Qwen2VLForConditionalGeneration\)/.test(
            error.message,
          ),
      );
      // no model_type: the class name decides
      assert.equal(pickArchitecture(dir, { architectures: ['Qwen2VLForConditionalGeneration'] }, ARCHITECTURES), ARCHITECTURES[0]);
    });

    it('missing or truncated tokenizer.json; tokenizer_config.json that contradicts it', async () => {
      const dir = await fresh();
      const tokenizer = await readFile(path.join(dir, 'tokenizer.json'), 'utf8');
      await writeFile(path.join(dir, 'tokenizer.json'), tokenizer.slice(0, tokenizer.length / 2));
      await rejects(readHfFolder(dir), /tokenizer\.json: not valid JSON \(truncated\?\)/);
      await rm(path.join(dir, 'tokenizer.json'));
      await rejects(readHfFolder(dir), /tokenizer\.json: missing file/);
      await writeFile(path.join(dir, 'tokenizer.json'), tokenizer);
      await editJson(path.join(dir, 'tokenizer_config.json'), (c) => {
        (c.added_tokens_decoder as Record<string, unknown>)['600'] = { content: '<|im_end|>', special: true };
      });
      await rejects(readHfFolder(dir), /tokenizer_config\.json: added token "<\|im_end\|>" has id 600 there but 498 in tokenizer\.json/);
      await editJson(path.join(dir, 'tokenizer_config.json'), (c) => {
        delete (c.added_tokens_decoder as Record<string, unknown>)['600'];
        c.eos_token = '<|not_a_token|>';
      });
      await rejects(readHfFolder(dir), /tokenizer_config\.json: eos_token "<\|not_a_token\|>" is not in tokenizer\.json/);
    });

    it('a bad chat template: syntax, failure while rendering, none at all', async () => {
      const dir = await fresh();
      await writeFile(path.join(dir, 'chat_template.jinja'), '{% for message in messages %}{{ message.content ');
      await rejects(readHfFolder(dir), /chat_template\.jinja: bad chat template: /);
      await writeFile(path.join(dir, 'chat_template.jinja'), '{% if messages[0].content is string %}ok{% else %}{{ raise_exception("text only") }}{% endif %}');
      await rejects(readHfFolder(dir), /chat_template\.jinja: chat template failed to render: text only/);
      await rm(path.join(dir, 'chat_template.jinja'));
      await writeFile(path.join(dir, 'chat_template.json'), '{"chat_template": 3}');
      await rejects(readHfFolder(dir), /chat_template\.json: "chat_template" must be a string/);
      await rm(path.join(dir, 'chat_template.json'));
      await editJson(path.join(dir, 'tokenizer_config.json'), (c) => delete c.chat_template);
      await rejects(readHfFolder(dir), /chat_template\.jinja: missing file; the folder has no chat template/);
    });

    it('generation_config.json with a bad eos id', async () => {
      const dir = await fresh();
      await editJson(path.join(dir, 'generation_config.json'), (g) => {
        g.eos_token_id = ['498'];
      });
      await rejects(readHfFolder(dir), /generation_config\.json: eos_token_id must be a token id or a list of them, got \["498"\]/);
    });
  });
});
