// POST /v1/vqa — HTTP only: the body is already parsed (multipart or JSON) and checked against the
// contract; this turns it into a VqaInput, calls the service and shapes the VqaResponse.
import { Router } from 'express';
import { ApiError } from '../../errors.ts';
import { decodeImageField } from '../../serving/image-payload.ts';
import type { VariantSelector } from '../../serving/variant-selection.ts';
import type { VqaInput, VqaOutcome, VqaService } from '../../serving/vqa.service.ts';
import { clientGone } from '../abort-signal.ts';
import { mediaTypeOf } from '../middleware/openapi-validate.ts';
import { contextOf } from '../request-context.ts';

interface VqaBody {
  image?: string;
  question: string;
  model?: string;
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  seed?: number;
}

export interface VqaRouterDeps {
  service: VqaService;
  selector: VariantSelector;
}

export function toVqaResponse(outcome: VqaOutcome): Record<string, unknown> {
  const { result } = outcome;
  return {
    id: outcome.id,
    answer: result.answer,
    reasoning: result.reasoning,
    model: outcome.model,
    variant: outcome.variant,
    finish_reason: result.finishReason,
    usage: {
      prompt_tokens: result.promptTokens,
      completion_tokens: result.completionTokens,
      total_tokens: result.promptTokens + result.completionTokens,
    },
    timings: outcome.timings,
  };
}

export function vqaRouter(deps: VqaRouterDeps): Router {
  const router = Router();
  router.post('/v1/vqa', async (req, res) => {
    const ctx = contextOf(res);
    const body = req.body as VqaBody;
    let image: Uint8Array | undefined;
    if (mediaTypeOf(req) === 'multipart/form-data') {
      if (!req.file) throw ApiError.of('image_missing', 'Send the image as a file part named "image".');
      image = new Uint8Array(req.file.buffer.buffer, req.file.buffer.byteOffset, req.file.buffer.byteLength);
    } else {
      image = decodeImageField(body.image ?? '');
    }
    const clientId = req.get(deps.selector.stickyHeader());
    const input: VqaInput = {
      image,
      question: body.question,
      ...(body.model !== undefined ? { model: body.model } : {}),
      ...(clientId !== undefined ? { clientId } : {}),
      ...(body.temperature !== undefined ? { temperature: body.temperature } : {}),
      ...(body.top_p !== undefined ? { topP: body.top_p } : {}),
      ...(body.max_tokens !== undefined ? { maxTokens: body.max_tokens } : {}),
      ...(body.seed !== undefined ? { seed: body.seed } : {}),
    };
    const outcome = await deps.service.answer(input, {
      audit: ctx.audit,
      signal: clientGone(res),
      idPrefix: 'vqa',
      ...(ctx.caller ? { keyId: ctx.caller.keyId } : {}),
    });
    res.setHeader('X-Model-Variant', outcome.variant);
    res.status(200).json(toVqaResponse(outcome));
  });
  return router;
}
