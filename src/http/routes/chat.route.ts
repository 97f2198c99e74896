// POST /v1/chat/completions — OpenAI-compatible. Non-streaming: one ChatCompletion. Streaming:
// Server-Sent Events, each `data:` line a ChatCompletionChunk, then `data: [DONE]`. The stream
// starts only once the answer is ready, so every failure (bad image, queue full, timeout) still
// arrives as a problem document with its proper status instead of a broken 200 stream.
import { Router } from 'express';
import { toChunks, toCompletion, type ChatRequest, type ChatService } from '../../serving/chat.service.ts';
import type { VariantSelector } from '../../serving/variant-selection.ts';
import { clientGone } from '../abort-signal.ts';
import { contextOf } from '../request-context.ts';

export interface ChatRouterDeps {
  service: ChatService;
  selector: VariantSelector;
}

export function chatRouter(deps: ChatRouterDeps): Router {
  const router = Router();
  router.post('/v1/chat/completions', async (req, res) => {
    const ctx = contextOf(res);
    const request = req.body as ChatRequest;
    const outcome = await deps.service.complete(request, req.get(deps.selector.stickyHeader()), {
      audit: ctx.audit,
      signal: clientGone(res),
      ...(ctx.caller ? { keyId: ctx.caller.keyId } : {}),
    });
    res.setHeader('X-Model-Variant', outcome.variant);
    if (request.stream !== true) {
      res.status(200).json(toCompletion(outcome));
      return;
    }
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache');
    res.setHeader('X-Accel-Buffering', 'no'); // let reverse proxies pass events through at once
    for (const chunk of toChunks(outcome, request.stream_options?.include_usage === true)) {
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    }
    res.end('data: [DONE]\n\n');
  });
  return router;
}
