// Closing an HTTP/1.1 server without cutting a request a client has already sent.
//
// The race to avoid: a keep-alive socket looks idle to the server from the moment a response ends
// until the next request's bytes are read, and a client reuses it at once. Destroying "idle"
// sockets (what http.Server#close and #closeIdleConnections do) therefore resets requests that
// were already on the wire, and the unread bytes make the kernel answer with RST. So while
// draining: the listening socket closes (new connections are refused), every response still to be
// written carries `Connection: close`, a request arriving on an open keep-alive socket is answered
// (the drain middleware turns inference into 503 + Retry-After), and an idle socket is left to the
// server's keep-alive timeout, which is the idle time the server advertises to clients anyway.
// Only when the grace period is over are unanswered requests given a 503 and sockets cut.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import net from 'node:net';

export interface GracefulClose {
  /** Responses begun and not yet finished. */
  readonly inFlight: number;
  /**
   * Stops accepting connections and resolves once every connection has closed; after graceMs the
   * still-unanswered requests get `answerAtGraceEnd` and every connection is cut.
   */
  close(options: { graceMs: number; answerAtGraceEnd(res: ServerResponse): void; onGraceOver?(unanswered: number): void }): Promise<void>;
}

/** How long answered-at-grace-end responses get to flush before the remaining sockets are cut. */
const FLUSH_BEFORE_CUT_MS = 500;

export function trackForGracefulClose(server: Server): GracefulClose {
  const responses = new Set<ServerResponse>();
  let closing = false;
  server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
    responses.add(res);
    res.once('close', () => responses.delete(res));
    if (closing && !res.headersSent) res.setHeader('Connection', 'close');
  });

  return {
    get inFlight() {
      return responses.size;
    },
    close({ graceMs, answerAtGraceEnd, onGraceOver }) {
      closing = true;
      // Responses already being prepared tell their client not to send another request on this socket.
      for (const res of responses) if (!res.headersSent) res.setHeader('Connection', 'close');
      return new Promise<void>((resolve) => {
        let cutTimer: NodeJS.Timeout | undefined;
        const graceTimer = setTimeout(() => {
          const unanswered = [...responses].filter((res) => !res.headersSent);
          onGraceOver?.(unanswered.length);
          for (const res of unanswered) answerAtGraceEnd(res);
          cutTimer = setTimeout(() => server.closeAllConnections(), FLUSH_BEFORE_CUT_MS);
        }, graceMs);
        // net.Server#close, not http.Server#close: the latter first destroys every idle keep-alive
        // socket, which is exactly the race described above.
        net.Server.prototype.close.call(server, () => {
          clearTimeout(graceTimer);
          if (cutTimer) clearTimeout(cutTimer);
          resolve();
        });
      });
    },
  };
}
