// The OpenAI chat-completions shape over the VQA service: the question is the text of the last
// user message, the image the last `image_url` part of the user messages (data: URLs only — the
// server never fetches remote URLs from inside a hospital network). The answer becomes
// `message.content` and the reasoning trace `message.reasoning_content`, as OpenAI-compatible
// reasoning servers do.
import { ApiError } from '../errors.ts';
import { decodeDataUrl } from './image-payload.ts';
import type { VqaContext, VqaInput, VqaOutcome, VqaService } from './vqa.service.ts';

interface TextPart { type: 'text'; text: string }
interface ImagePart { type: 'image_url'; image_url: { url: string } }
type Part = TextPart | ImagePart;

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content?: string | null | Part[];
}

/** The request after contract validation (see ChatCompletionRequest in openapi.yaml). */
export interface ChatRequest {
  model?: string;
  messages: ChatMessage[];
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  max_completion_tokens?: number;
  seed?: number;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  variant: string;
  choices: [{ index: 0; message: { role: 'assistant'; content: string; reasoning_content: string }; finish_reason: 'stop' | 'length' }];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{ index: 0; delta: { role?: 'assistant'; content?: string; reasoning_content?: string }; finish_reason: 'stop' | 'length' | null }>;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } | null;
}

/** Question text and image bytes from the messages; throws ApiError when either is missing. */
export function extractQuestionAndImage(messages: ChatMessage[]): { question: string; image: Uint8Array } {
  const users = messages.filter((m) => m.role === 'user');
  const last = users.at(-1);
  if (!last) throw ApiError.of('invalid_request', 'The messages contain no user message.');
  const question = textOf(last.content).trim();
  let imageUrl: string | undefined;
  for (const message of users) {
    if (!Array.isArray(message.content)) continue;
    for (const part of message.content) if (part.type === 'image_url') imageUrl = part.image_url.url;
  }
  if (imageUrl === undefined) throw ApiError.of('image_missing', 'No image: add an image_url part with a data: URL to a user message.');
  if (!imageUrl.trimStart().toLowerCase().startsWith('data:')) {
    throw ApiError.of('image_url_not_supported', 'Remote image URLs are not fetched; send the image as a data: URL.');
  }
  if (question === '') throw ApiError.of('question_empty', 'The last user message has no text question.');
  return { question, image: decodeDataUrl(imageUrl) };
}

function textOf(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.filter((p): p is TextPart => p.type === 'text').map((p) => p.text).join('\n');
}

/** The system (and developer) messages' text: the instructions a model with a chat template is given. */
export function systemPromptOf(messages: ChatMessage[]): string {
  return messages
    .filter((m) => m.role === 'system' || m.role === 'developer')
    .map((m) => textOf(m.content).trim())
    .filter((t) => t !== '')
    .join('\n');
}

export function toVqaInput(request: ChatRequest, clientId: string | undefined): VqaInput {
  const { question, image } = extractQuestionAndImage(request.messages);
  const maxTokens = request.max_completion_tokens ?? request.max_tokens;
  const systemPrompt = systemPromptOf(request.messages);
  return {
    image,
    question,
    ...(systemPrompt !== '' ? { systemPrompt } : {}),
    ...(request.model !== undefined && request.model !== 'auto' ? { model: request.model } : {}),
    ...(clientId !== undefined ? { clientId } : {}),
    ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
    ...(request.top_p !== undefined ? { topP: request.top_p } : {}),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ...(request.seed !== undefined ? { seed: request.seed } : {}),
  };
}

function usageOf(outcome: VqaOutcome): ChatCompletion['usage'] {
  const { promptTokens, completionTokens } = outcome.result;
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

export function toCompletion(outcome: VqaOutcome): ChatCompletion {
  return {
    id: outcome.id,
    object: 'chat.completion',
    created: Math.floor(outcome.createdAt.getTime() / 1000),
    model: outcome.model,
    variant: outcome.variant,
    choices: [{
      index: 0,
      message: { role: 'assistant', content: outcome.result.answer, reasoning_content: outcome.result.reasoning },
      finish_reason: outcome.result.finishReason,
    }],
    usage: usageOf(outcome),
  };
}

/**
 * The answer as stream chunks: reasoning first (as clients of reasoning models expect), then the
 * answer, then the finish reason, then usage when asked for. The runtime generates a batch as a
 * whole, so the chunks follow generation rather than interleave with it.
 */
export function toChunks(outcome: VqaOutcome, includeUsage: boolean): ChatCompletionChunk[] {
  const base = { id: outcome.id, object: 'chat.completion.chunk' as const, created: Math.floor(outcome.createdAt.getTime() / 1000), model: outcome.model };
  // OpenAI streams open with the role and an empty content delta.
  const chunks: ChatCompletionChunk[] = [{ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }];
  if (outcome.result.reasoning !== '') chunks.push({ ...base, choices: [{ index: 0, delta: { reasoning_content: outcome.result.reasoning }, finish_reason: null }] });
  chunks.push({ ...base, choices: [{ index: 0, delta: { content: outcome.result.answer }, finish_reason: null }] });
  chunks.push({ ...base, choices: [{ index: 0, delta: {}, finish_reason: outcome.result.finishReason }] });
  if (includeUsage) chunks.push({ ...base, choices: [], usage: usageOf(outcome) });
  return chunks;
}

export class ChatService {
  constructor(private readonly vqa: VqaService) {}

  complete(request: ChatRequest, clientId: string | undefined, ctx: VqaContext): Promise<VqaOutcome> {
    return this.vqa.answer(toVqaInput(request, clientId), { ...ctx, idPrefix: 'chatcmpl' });
  }
}
