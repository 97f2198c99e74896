// A folder's tokenizer as the HF fast tokenizer would run it: tokenizer.json (model, pre-tokenizer,
// added tokens) with the settings and special tokens of tokenizer_config.json, run by
// @huggingface/tokenizers. Nothing about the tokenizer is re-implemented here.
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { HfFolderError } from './errors.ts';
import { isJsonRecord, readJsonFile, readOptionalJsonFile, type JsonRecord } from './json-file.ts';

export const TOKENIZER_FILE = 'tokenizer.json';
export const TOKENIZER_CONFIG_FILE = 'tokenizer_config.json';

export interface HfSpecialTokens {
  bos?: { token: string; id: number };
  eos?: { token: string; id: number };
  pad?: { token: string; id: number };
  unk?: { token: string; id: number };
}

/** `"<|im_end|>"` or `{"content": "<|im_end|>", …}` (how transformers saves an AddedToken); null when unset. */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (isJsonRecord(value) && typeof value.content === 'string') return value.content;
  return undefined;
}

export class HfTokenizer {
  readonly specialTokens: HfSpecialTokens;
  /** One past the largest id the tokenizer can produce (its vocabulary plus added tokens). */
  readonly vocabSize: number;
  /** tokenizer_config.json as read (empty when the folder has none): the chat template's extra variables. */
  readonly config: JsonRecord;
  private readonly inner: Tokenizer;
  private readonly specialIds: Set<number>;

  constructor(tokenizerJson: JsonRecord, config: JsonRecord, dir: string) {
    const path = join(dir, TOKENIZER_FILE);
    try {
      // clean_up_tokenization_spaces: tokenizers.js defaults it to true; transformers reads it from
      // the config (false for Qwen2), and a clean-up would change decoded text ("left ." → "left.").
      this.inner = new Tokenizer(tokenizerJson, { ...config, clean_up_tokenization_spaces: config.clean_up_tokenization_spaces === true });
    } catch (error) {
      throw new HfFolderError(`${path}: not a tokenizer this server can run: ${(error as Error).message}`, path);
    }
    this.config = config;
    let maxId = -1;
    for (const id of this.inner.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;

    const configPath = join(dir, TOKENIZER_CONFIG_FILE);
    // added_tokens_decoder restates tokenizer.json's added tokens; a disagreement means the two files
    // come from different tokenizers, and the ids the model was trained on are then unknown.
    const decoder = config.added_tokens_decoder;
    if (isJsonRecord(decoder)) {
      for (const [idText, spec] of Object.entries(decoder)) {
        const content = tokenText(spec);
        if (content === undefined) continue;
        const id = this.inner.token_to_id(content);
        if (id !== Number(idText)) {
          throw new HfFolderError(
            `${configPath}: added token ${JSON.stringify(content)} has id ${idText} there but ${id ?? 'none'} in ${TOKENIZER_FILE}`,
            configPath,
          );
        }
      }
    }
    const resolve = (key: string): { token: string; id: number } | undefined => {
      const token = tokenText(config[key]);
      if (token === undefined) return undefined;
      const id = this.inner.token_to_id(token);
      if (id === undefined) throw new HfFolderError(`${configPath}: ${key} ${JSON.stringify(token)} is not in ${TOKENIZER_FILE}`, configPath);
      return { token, id };
    };
    const special: HfSpecialTokens = {};
    for (const [key, field] of [
      ['bos', 'bos_token'],
      ['eos', 'eos_token'],
      ['pad', 'pad_token'],
      ['unk', 'unk_token'],
    ] as const) {
      const resolved = resolve(field);
      if (resolved) special[key] = resolved;
    }
    this.specialTokens = special;
    this.specialIds = new Set([...this.inner.get_added_tokens_decoder()].filter(([, t]) => t.special).map(([id]) => id));
  }

  /** Reads tokenizer.json (required) and tokenizer_config.json (optional) from `dir`. */
  static async load(dir: string): Promise<HfTokenizer> {
    const json = await readJsonFile(dir, TOKENIZER_FILE);
    const config = (await readOptionalJsonFile(dir, TOKENIZER_CONFIG_FILE)) ?? {};
    return new HfTokenizer(json, config, dir);
  }

  /** Ids of `text`; special tokens written in the text become their ids (a rendered chat template is such text). */
  encode(text: string): number[] {
    if (text === '') return [];
    return this.inner.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: readonly number[], opts: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return ''; // tokenizers.js throws on an empty list
    for (const id of ids) {
      // tokenizers.js would silently decode an unknown id as nothing.
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new RangeError(`token id ${id} is outside the vocabulary`);
    }
    return this.inner.decode([...ids], { skip_special_tokens: opts.skipSpecial ?? false, clean_up_tokenization_spaces: false });
  }

  /** The id of a token string (e.g. `<|image_pad|>`), or undefined. */
  tokenId(token: string): number | undefined {
    return this.inner.token_to_id(token);
  }

  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }
}
