// Semantic judge backed by any OpenAI-compatible chat-completions server (vLLM, llama.cpp, TGI, OpenAI).
// The LLM sees the question, the known image metadata and the completion, and replies 1 or 0.

import type { JudgeCase, SemanticJudge } from './semantic-judge.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface OpenAiJudgeOptions {
  /** Server root or its /v1 root: "http://127.0.0.1:8000" and "http://127.0.0.1:8000/v1" both work. */
  baseUrl: string;
  /** Model name sent in the request; omitted when absent (vLLM and llama.cpp then use the model they serve). */
  model?: string;
  apiKey?: string;
  /** Per request; the reward step waits on these, so a hung judge must not hang training. Default 30 s. */
  timeoutMs?: number;
  /** Room for "1"/"0" plus a little slack for chatty models. Default 8. */
  maxTokens?: number;
  /** Show the gold answer to the judge too (off by default: correctness is the accuracy reward's job). */
  includeReferenceAnswer?: boolean;
  /** Replace the default prompt. */
  buildMessages?: (completion: string, c: JudgeCase) => ChatMessage[];
}

export class JudgeResponseError extends Error {
  override name = 'JudgeResponseError';
}

const SYSTEM_PROMPT =
  'You are a radiologist auditing the reasoning of a medical visual-question-answering model. ' +
  'Reply with exactly one character: 1 if the reasoning is clinically consistent with the stated image ' +
  'modality and body region and supports the final answer, otherwise 0.';

export function defaultJudgeMessages(completion: string, c: JudgeCase, includeReferenceAnswer = false): ChatMessage[] {
  const lines = [`Question: ${c.question}`];
  if (c.modality) lines.push(`Image modality: ${c.modality}`);
  if (c.organ) lines.push(`Body region / organ: ${c.organ}`);
  if (includeReferenceAnswer) lines.push(`Reference answer: ${c.answer}`);
  lines.push('Model output:', completion, '', 'Is the reasoning grounded and consistent with the answer? Reply 1 or 0.');
  return [
    { role: 'system', content: SYSTEM_PROMPT },
    { role: 'user', content: lines.join('\n') },
  ];
}

/**
 * Reads the verdict from the judge's reply, after dropping any <think> block of a reasoning model: a reply
 * that starts with 0/1 (optionally in brackets, quotes or bold, "1." allowed), else the one standalone 0 or
 * 1 in the reply. A reply naming both values ("1 or 0"), or neither ("10", "0.5", "yes"), is an error
 * rather than a guess, so a misconfigured judge is noticed.
 */
export function parseJudgeVerdict(content: string): 0 | 1 {
  const text = content.replace(/<think>[\s\S]*?<\/think>/g, '').trim();
  const standalone = new Set([...text.matchAll(/(?<![\w.])([01])(?![\w]|\.\d)/g)].map((m) => m[1]));
  const leading = /^[\s"'`([{*]*([01])(?![\d]|\.\d)/.exec(text);
  if (standalone.size === 1 && (leading === null || standalone.has(leading[1]))) return standalone.has('1') ? 1 : 0;
  throw new JudgeResponseError(`cannot read a 0/1 verdict from judge reply: ${JSON.stringify(content.slice(0, 200))}`);
}

export function chatCompletionsUrl(baseUrl: string): string {
  const root = baseUrl.replace(/\/+$/, '');
  return root.endsWith('/v1') ? `${root}/chat/completions` : `${root}/v1/chat/completions`;
}

export class OpenAiCompatibleJudge implements SemanticJudge {
  private readonly url: string;

  constructor(private readonly options: OpenAiJudgeOptions) {
    this.url = chatCompletionsUrl(options.baseUrl);
  }

  async judge(completion: string, c: JudgeCase): Promise<0 | 1> {
    const { model, apiKey, timeoutMs = 30_000, maxTokens = 8, includeReferenceAnswer = false, buildMessages } = this.options;
    const messages = buildMessages ? buildMessages(completion, c) : defaultJudgeMessages(completion, c, includeReferenceAnswer);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    const response = await fetch(this.url, {
      method: 'POST',
      headers,
      // Greedy decoding: the same completion should always get the same reward.
      body: JSON.stringify({ ...(model === undefined ? {} : { model }), messages, temperature: 0, max_tokens: maxTokens }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!response.ok) {
      const detail = (await response.text()).slice(0, 200);
      throw new JudgeResponseError(`judge HTTP ${response.status} from ${this.url}: ${detail}`);
    }
    const body = (await response.json()) as { choices?: { message?: { content?: unknown } }[] };
    const content = body.choices?.[0]?.message?.content;
    if (typeof content !== 'string') throw new JudgeResponseError('judge reply has no choices[0].message.content string');
    return parseJudgeVerdict(content);
  }
}
