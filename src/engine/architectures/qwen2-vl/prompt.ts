// A Qwen2-VL prompt as its processor builds it: the folder's own chat template renders the
// conversation (each image part becomes <|vision_start|><|image_pad|><|vision_end|>), the text is
// tokenised, and each <|image_pad|> becomes as many image tokens as its image has (grid_t * grid_h
// * grid_w / merge²). HF expands the placeholder in the text before tokenising; <|image_pad|> is a
// special token that the tokenizer splits out before anything else, so expanding the single id
// afterwards gives the same ids.

export type PromptPart = { type: 'text'; text: string } | { type: 'image' };

export interface PromptTurn {
  role: 'system' | 'user' | 'assistant';
  content: string | PromptPart[];
}

/** What the prompt needs of a folder: its template and its tokenizer (src/hf provides both). */
export interface PromptSource {
  render(turns: readonly PromptTurn[], opts: { addGenerationPrompt: boolean }): string;
  encode(text: string): number[];
}

export interface PromptOptions {
  imageTokenId: number;
  /** Image tokens of each image part, in the order the images appear in the conversation. */
  imageTokenCounts: readonly number[];
}

/** The conversation of a visual question: an optional system turn, then the image and the question. */
export function questionTurns(question: string, images: number, systemPrompt?: string): PromptTurn[] {
  const turns: PromptTurn[] = [];
  if (systemPrompt !== undefined && systemPrompt !== '') turns.push({ role: 'system', content: systemPrompt });
  const parts: PromptPart[] = Array.from({ length: images }, () => ({ type: 'image' as const }));
  parts.push({ type: 'text', text: question });
  turns.push({ role: 'user', content: parts });
  return turns;
}

/** Replaces the i-th single image token with `counts[i]` copies. */
export function expandImageTokens(ids: readonly number[], imageTokenId: number, counts: readonly number[]): number[] {
  const found = ids.filter((id) => id === imageTokenId).length;
  if (found !== counts.length) {
    throw new Error(`the rendered prompt has ${found} image placeholder(s) but ${counts.length} image(s) were given`);
  }
  const out: number[] = [];
  let image = 0;
  for (const id of ids) {
    if (id === imageTokenId) {
      for (let k = 0; k < counts[image]!; k++) out.push(id);
      image++;
    } else {
      out.push(id);
    }
  }
  return out;
}

/** Prompt ids for `turns`, ending with the assistant's opening so the model writes the reply. */
export function buildPromptIds(source: PromptSource, turns: readonly PromptTurn[], opts: PromptOptions): number[] {
  const text = source.render(turns, { addGenerationPrompt: true });
  return expandImageTokens(source.encode(text), opts.imageTokenId, opts.imageTokenCounts);
}
