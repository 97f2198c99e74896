// The OpenAI chat-completions shape over the VQA service. The model answers one question about one
// image, so a request must be exactly that: one user message holding one `image_url` part (a
// data: URL — the server never fetches remote URLs from inside a hospital network) and the
// question as text (several text parts are joined by newlines). Whatever the model could not
// take into account — system or developer instructions, earlier turns, a second image — is
// refused with a 400 naming it, never dropped (unknown request fields are refused by the
// contract). The answer becomes `message.content` and the reasoning trace
// `message.reasoning_content`, as OpenAI-compatible reasoning servers do.
import { ApiError } from '../errors.ts';
import { decodeDataUrl } from './image-payload.ts';
import type { VqaContext, VqaInput, VqaOutcome, VqaService } from './vqa.service.ts';

interface TextPart {
  type: 'text';
  text: string;
}
interface ImagePart {
  type: 'image_url';
  image_url: { url: string };
}
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

/** A part of the request the model would not take into account: refused, naming where it is. */
function unsupported(pointer: string, detail: string): ApiError {
  return ApiError.of('unsupported_parameter', detail, { extensions: { errors: [{ path: pointer, message: detail }] } });
}

function isEmpty(content: ChatMessage['content']): boolean {
  if (content === undefined || content === null) return true;
  if (typeof content === 'string') return content.trim() === '';
  return content.length === 0;
}

/**
 * Question text and image bytes from the one user message; throws ApiError when either is missing,
 * and when the messages hold anything the model would not see.
 */
export function extractQuestionAndImage(messages: ChatMessage[]): { question: string; image: Uint8Array } {
  const users = messages.map((m, i) => ({ m, i })).filter(({ m }) => m.role === 'user');
  if (users.length === 0) throw ApiError.of('invalid_request', 'The messages contain no user message.');
  messages.forEach((m, i) => {
    if (m.role === 'user' || isEmpty(m.content)) return;
    throw unsupported(
      `/messages/${i}`,
      m.role === 'assistant'
        ? `messages[${i}]: earlier turns are not supported; the model answers one question about one image and would not see them. Send one user message.`
        : `messages[${i}]: ${m.role} messages are not supported; the model answers the question about the image and would not follow instructions. Put what matters into the question.`,
    );
  });
  if (users.length > 1) {
    const earlier = users[0]!.i;
    throw unsupported(
      `/messages/${earlier}`,
      `messages[${earlier}]: only one user message is answered; the model would not see earlier turns. Send the question and its image in one user message.`,
    );
  }
  const { m: user, i: index } = users[0]!;
  const parts = Array.isArray(user.content) ? user.content : [];
  const images = parts.map((part, j) => ({ part, j })).filter(({ part }) => part.type === 'image_url');
  if (images.length > 1) {
    const second = images[1]!.j;
    throw unsupported(`/messages/${index}/content/${second}`, `messages[${index}].content[${second}]: one image per request; the model reads a single image.`);
  }
  const question = textOf(user.content).trim();
  const imageUrl = images[0] ? (images[0].part as ImagePart).image_url.url : undefined;
  if (imageUrl === undefined) throw ApiError.of('image_missing', 'No image: add an image_url part with a data: URL to the user message.');
  if (!imageUrl.trimStart().toLowerCase().startsWith('data:')) {
    throw ApiError.of('image_url_not_supported', 'Remote image URLs are not fetched; send the image as a data: URL.');
  }
  if (question === '') throw ApiError.of('question_empty', 'The user message has no text question.');
  return { question, image: decodeDataUrl(imageUrl) };
}

function textOf(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter((p): p is TextPart => p.type === 'text')
    .map((p) => p.text)
    .join('\n');
}

export function toVqaInput(request: ChatRequest, clientId: string | undefined): VqaInput {
  const { question, image } = extractQuestionAndImage(request.messages);
  if (request.max_tokens !== undefined && request.max_completion_tokens !== undefined && request.max_tokens !== request.max_completion_tokens) {
    throw unsupported(
      '/max_tokens',
      'max_tokens and max_completion_tokens disagree; send one of them (max_tokens is the older name of max_completion_tokens).',
    );
  }
  const maxTokens = request.max_completion_tokens ?? request.max_tokens;
  return {
    image,
    question,
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
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: outcome.result.answer, reasoning_content: outcome.result.reasoning },
        finish_reason: outcome.result.finishReason,
      },
    ],
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
  if (outcome.result.reasoning !== '')
    chunks.push({ ...base, choices: [{ index: 0, delta: { reasoning_content: outcome.result.reasoning }, finish_reason: null }] });
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
