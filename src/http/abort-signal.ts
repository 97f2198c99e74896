// An AbortSignal that fires when the client disconnects before its response is complete, so a
// request still waiting in the queue can leave it instead of costing a batch slot.
import type { Response } from 'express';

export function clientGone(res: Response): AbortSignal {
  const controller = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
