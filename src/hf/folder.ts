// A Hugging Face model folder read as it is: config.json (raw, for the architecture's own parser),
// the tokenizer, the chat template, generation_config.json and preprocessor_config.json. Weights are
// loaded separately (weights.ts), once the architecture has said which tensors it needs.
import { ChatTemplate, type ChatTurn } from './chat-template.ts';
import { readGenerationDefaults, type GenerationDefaults } from './generation-config.ts';
import { readJsonFile, readOptionalJsonFile, type JsonRecord } from './json-file.ts';
import { HfTokenizer } from './tokenizer.ts';

export const CONFIG_FILE = 'config.json';
export const PREPROCESSOR_CONFIG_FILE = 'preprocessor_config.json';

const PROBE_CONVERSATION: ChatTurn[] = [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'What is shown?' }] }];

export interface HfFolder {
  dir: string;
  /** config.json as parsed JSON. */
  config: JsonRecord;
  tokenizer: HfTokenizer;
  chatTemplate: ChatTemplate;
  generation: GenerationDefaults;
  /** preprocessor_config.json, or undefined when the folder has none (a text-only model). */
  preprocessor: JsonRecord | undefined;
}

/** Reads everything but the weights; each failure is an HfFolderError naming its file. */
export async function readHfFolder(dir: string): Promise<HfFolder> {
  const config = await readJsonFile(dir, CONFIG_FILE);
  const tokenizer = await HfTokenizer.load(dir);
  const chatTemplate = await ChatTemplate.load(dir, tokenizer.config);
  // A template that cannot render a plain question about one image would fail every request: refuse the folder now.
  chatTemplate.render(PROBE_CONVERSATION, { addGenerationPrompt: true });
  const generation = await readGenerationDefaults(dir, config);
  const preprocessor = await readOptionalJsonFile(dir, PREPROCESSOR_CONFIG_FILE);
  return { dir, config, tokenizer, chatTemplate, generation, preprocessor };
}
