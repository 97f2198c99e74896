// A folder's chat template, rendered by @huggingface/jinja (the implementation transformers.js uses)
// with the variables transformers passes to apply_chat_template. Where it is looked for, in the
// order transformers' processor does: chat_template.jinja, chat_template.json, then the
// `chat_template` of tokenizer_config.json (a string, or a list of named templates).
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { HfFolderError } from './errors.ts';
import { isJsonRecord, readOptionalJsonFile, readOptionalText, type JsonRecord } from './json-file.ts';

export const CHAT_TEMPLATE_JINJA = 'chat_template.jinja';
export const CHAT_TEMPLATE_JSON = 'chat_template.json';

export type ChatPart = { type: 'text'; text: string } | { type: 'image' };

export interface ChatTurn {
  role: 'system' | 'user' | 'assistant';
  content: string | ChatPart[];
}

export interface RenderOptions {
  addGenerationPrompt: boolean;
  /** Extra template variables (e.g. `add_vision_id`). */
  extra?: Record<string, unknown>;
}

/** A template from a list form: the one named "default", as transformers picks it. */
function fromList(value: unknown[], path: string): string {
  const named = value.filter(isJsonRecord);
  const chosen = named.find((t) => t.name === 'default') ?? (named.length === 1 ? named[0] : undefined);
  if (!chosen || typeof chosen.template !== 'string') {
    throw new HfFolderError(`${path}: chat_template is a list without a template named "default"`, path);
  }
  return chosen.template;
}

export class ChatTemplate {
  private readonly template: Template;

  /** `source` is the file the template came from: every error names it. */
  constructor(
    readonly text: string,
    readonly source: string,
    private readonly variables: Record<string, unknown>,
  ) {
    try {
      this.template = new Template(text);
    } catch (error) {
      throw new HfFolderError(`${source}: bad chat template: ${(error as Error).message}`, source);
    }
  }

  /**
   * Finds the template in the folder; `tokenizerConfig` is tokenizer_config.json (its special
   * tokens become template variables, e.g. `eos_token`). Throws naming the file when there is none.
   */
  static async load(dir: string, tokenizerConfig: JsonRecord): Promise<ChatTemplate> {
    // (@huggingface/jinja itself provides raise_exception, which templates use to refuse a conversation.)
    const variables: Record<string, unknown> = {};
    for (const key of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) {
      const value = tokenizerConfig[key];
      variables[key] = isJsonRecord(value) ? value.content : (value ?? null);
    }
    const jinja = await readOptionalText(dir, CHAT_TEMPLATE_JINJA);
    if (jinja !== undefined) return new ChatTemplate(jinja, join(dir, CHAT_TEMPLATE_JINJA), variables);
    const jsonPath = join(dir, CHAT_TEMPLATE_JSON);
    const json = await readOptionalJsonFile(dir, CHAT_TEMPLATE_JSON);
    if (json !== undefined) {
      const value = json.chat_template;
      if (typeof value === 'string') return new ChatTemplate(value, jsonPath, variables);
      if (Array.isArray(value)) return new ChatTemplate(fromList(value, jsonPath), jsonPath, variables);
      throw new HfFolderError(`${jsonPath}: "chat_template" must be a string`, jsonPath);
    }
    const configPath = join(dir, 'tokenizer_config.json');
    const value = tokenizerConfig.chat_template;
    if (typeof value === 'string') return new ChatTemplate(value, configPath, variables);
    if (Array.isArray(value)) return new ChatTemplate(fromList(value, configPath), configPath, variables);
    throw new HfFolderError(
      `${join(dir, CHAT_TEMPLATE_JINJA)}: missing file; the folder has no chat template (nor in ${CHAT_TEMPLATE_JSON} or tokenizer_config.json)`,
      join(dir, CHAT_TEMPLATE_JINJA),
    );
  }

  /** The prompt text for `messages`; a template that fails while rendering is reported against its file. */
  render(messages: readonly ChatTurn[], opts: RenderOptions): string {
    try {
      return this.template.render({
        ...this.variables,
        ...opts.extra,
        messages,
        add_generation_prompt: opts.addGenerationPrompt,
      });
    } catch (error) {
      throw new HfFolderError(`${this.source}: chat template failed to render: ${(error as Error).message}`, this.source);
    }
  }
}
