// Run-time tokenizer: a tokenizer.json written by tokenizer-train.ts, read with
// @huggingface/tokenizers so that serving uses the same implementation any HF-compatible tool would.
import { readFile } from 'node:fs/promises';
import { Tokenizer } from '@huggingface/tokenizers';
import type { SPECIAL_TOKENS } from './special-tokens.ts';

export interface DecodeOptions {
  /** Drop <image>, <think>, <eos>, … from the text (default false: keep them, e.g. for parseCompletion). */
  skipSpecial?: boolean;
}

export class VqaTokenizer {
  readonly vocabSize: number;
  readonly imageId: number;
  readonly thinkId: number;
  readonly thinkEndId: number;
  readonly answerId: number;
  readonly answerEndId: number;
  readonly eosId: number;
  readonly padId: number;
  private readonly inner: Tokenizer;

  /** `json` is a parsed tokenizer.json that carries all of SPECIAL_TOKENS as added tokens. */
  constructor(json: object) {
    // clean_up_tokenization_spaces defaults to true in tokenizers.js and would turn "left ." into
    // "left." on decode, breaking exact round trips; byte-level BPE needs no clean-up.
    this.inner = new Tokenizer(json, { clean_up_tokenization_spaces: false });
    const special = (token: (typeof SPECIAL_TOKENS)[number]): number => {
      const id = this.inner.token_to_id(token);
      if (id === undefined) throw new Error(`tokenizer.json lacks the special token ${token}`);
      return id;
    };
    this.imageId = special('<image>');
    this.thinkId = special('<think>');
    this.thinkEndId = special('</think>');
    this.answerId = special('<answer>');
    this.answerEndId = special('</answer>');
    this.eosId = special('<eos>');
    this.padId = special('<pad>');
    let maxId = -1;
    for (const id of this.inner.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
  }

  static async load(tokenizerJsonPath: string): Promise<VqaTokenizer> {
    return new VqaTokenizer(JSON.parse(await readFile(tokenizerJsonPath, 'utf8')) as object);
  }

  /** Token ids for `text`; special tokens written in the text become their single ids. Adds nothing. */
  encode(text: string): number[] {
    if (text === '') return [];
    return this.inner.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return ''; // tokenizers.js throws on an empty list
    for (const id of ids) {
      // tokenizers.js would silently decode an unknown id as nothing.
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary`);
    }
    return this.inner.decode([...ids], { skip_special_tokens: opts.skipSpecial ?? false, clean_up_tokenization_spaces: false });
  }

  /** Token strings for `text` (byte-level spelling, e.g. "Ġlung"); for inspection and tests. */
  tokenize(text: string): string[] {
    return this.inner.tokenize(text);
  }
}
