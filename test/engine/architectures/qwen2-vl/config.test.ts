// config.json in the public flat layout and in transformers v5's layout, and the errors that name
// the offending field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseQwen2VLConfig, Qwen2VLConfigError } from '../../../../src/engine/architectures/qwen2-vl/config.ts';
import { paramCount, qwen2VLParamTable } from '../../../../src/engine/architectures/qwen2-vl/params.ts';

const DIR = join(import.meta.dirname, '../../../../../shared/reference/qwen2-vl-tiny');
const flat = () => JSON.parse(readFileSync(join(DIR, 'config.json'), 'utf8'));

/** The same model as transformers v5 writes it: text fields nested, rope_parameters with rope_theta inside. */
function v5Layout(): Record<string, unknown> {
  const f = flat();
  const textKeys = [
    'hidden_size',
    'intermediate_size',
    'num_attention_heads',
    'num_hidden_layers',
    'num_key_value_heads',
    'rms_norm_eps',
    'vocab_size',
    'max_position_embeddings',
    'hidden_act',
    'tie_word_embeddings',
  ];
  const text: Record<string, unknown> = { model_type: 'qwen2_vl_text' };
  for (const k of textKeys) {
    text[k] = f[k];
    delete f[k];
  }
  text.rope_parameters = { rope_type: 'default', mrope_section: f.rope_scaling.mrope_section, rope_theta: f.rope_theta };
  delete f.rope_scaling;
  delete f.rope_theta;
  return { ...f, text_config: text };
}

test('the flat public layout parses to the reference sizes', () => {
  const c = parseQwen2VLConfig(flat());
  assert.deepEqual(
    { ...c.text },
    {
      hiddenSize: 64,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      intermediateSize: 128,
      vocabSize: 512,
      rmsNormEps: 1e-6,
      ropeTheta: 1e6,
      mropeSection: [2, 3, 3],
      maxPositionEmbeddings: 32768,
      tieWordEmbeddings: false,
    },
  );
  assert.equal(c.vision.depth, 2);
  assert.equal(c.vision.embedDim, 32);
  assert.equal(c.vision.headDim, 8);
  assert.equal(c.vision.mlpHidden, 128);
  assert.equal(c.vision.patchDim, 1176);
  assert.equal(c.vision.outHidden, 64);
  assert.deepEqual(c.tokens, {
    imageTokenId: 508,
    videoTokenId: 509,
    visionStartTokenId: 505,
    visionEndTokenId: 506,
    bosTokenId: 496,
    eosTokenIds: [498],
  });
  assert.equal(paramCount(c), 227_712, 'the README states 227,712 parameters');
});

test('transformers v5 layout (text_config, rope_parameters with rope_theta inside) gives the same config', () => {
  assert.deepEqual(parseQwen2VLConfig(v5Layout()), parseQwen2VLConfig(flat()));
});

test('tied embeddings drop lm_head from the table; LoRA targets are the block projections', () => {
  const c = parseQwen2VLConfig({ ...flat(), tie_word_embeddings: true });
  const names = qwen2VLParamTable(c).map((p) => p.name);
  assert.ok(!names.includes('lm_head.weight'));
  const lora = qwen2VLParamTable(c)
    .filter((p) => p.loraTarget)
    .map((p) => p.name);
  assert.ok(lora.includes('model.layers.0.self_attn.q_proj.weight'));
  assert.ok(lora.includes('model.layers.1.mlp.down_proj.weight'));
  assert.ok(lora.includes('visual.blocks.0.attn.qkv.weight'));
  assert.ok(!lora.some((n) => n.endsWith('.bias') || n.includes('norm') || n.includes('embed')));
});

test('errors name the field', () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...flat(), model_type: 'llama', architectures: ['LlamaForCausalLM'] }, /unsupported architecture.*"llama"/],
    [
      (() => {
        const f = flat();
        delete f.num_attention_heads;
        return f;
      })(),
      /"num_attention_heads" is missing/,
    ],
    [{ ...flat(), hidden_size: '64' }, /field "hidden_size" must be a positive integer/],
    [{ ...flat(), rope_scaling: { type: 'mrope', mrope_section: [2, 3, 4] } }, /"rope_scaling.mrope_section" \[2,3,4\] sums to 9/],
    [
      (() => {
        const f = flat();
        delete f.rope_scaling;
        return f;
      })(),
      /"rope_scaling" \(or "rope_parameters"/,
    ],
    [{ ...flat(), vision_config: undefined }, /"vision_config" is missing/],
    [{ ...flat(), vision_config: { ...flat().vision_config, hidden_size: 32 } }, /"vision_config.hidden_size" \(32\) is the merger's output/],
    [{ ...flat(), num_key_value_heads: 3 }, /"num_key_value_heads" \(3\) must divide/],
    [{ ...flat(), image_token_id: 999 }, /image_token_id|imageTokenId = 999 is outside the vocabulary/],
    [
      (() => {
        const v = v5Layout();
        delete (v.text_config as Record<string, unknown>).num_hidden_layers;
        return v;
      })(),
      /"text_config.num_hidden_layers" or "num_hidden_layers" is missing/,
    ],
  ];
  for (const [raw, re] of cases) {
    assert.throws(
      () => parseQwen2VLConfig(raw),
      (e: Error) => e instanceof Qwen2VLConfigError && re.test(e.message),
      `expected ${re}`,
    );
  }
});
