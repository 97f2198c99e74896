// While draining, an inference request is refused with 503 + Retry-After, and its body is read
// first: answering and closing with unread bytes on the socket makes the kernel reset the
// connection, and the client sees ECONNRESET instead of the 503.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AUTH, makeTestApp } from '../../helpers/test-app.ts';

function postLargeBody(port: number, bytes: number): Promise<{ status?: number; retryAfter?: string; connection?: string; error?: string }> {
  return new Promise((resolve) => {
    const body = JSON.stringify({ image: 'A'.repeat(bytes), question: 'Normal?' });
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: '/v1/vqa',
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode, retryAfter: String(res.headers['retry-after']), connection: String(res.headers.connection) }));
        res.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
      },
    );
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ error: e.code ?? e.message }));
    // Sent in pieces, as a slow client would: most of the body is still to come when the server decides.
    const chunk = 256 * 1024;
    let offset = 0;
    const pump = (): void => {
      while (offset < body.length) {
        const piece = body.slice(offset, offset + chunk);
        offset += chunk;
        if (!req.write(piece)) return void req.once('drain', () => setTimeout(pump, 5));
      }
      req.end();
    };
    pump();
  });
}

test('draining: a large inference request is answered 503 + Retry-After + Connection: close, never reset', async () => {
  const t = await makeTestApp();
  const server = t.clinvqa.app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  try {
    t.clinvqa.startDraining();
    const port = (server.address() as AddressInfo).port;
    for (let i = 0; i < 3; i++) {
      const outcome = await postLargeBody(port, 8 * 1024 * 1024);
      assert.deepEqual(outcome, { status: 503, retryAfter: '1', connection: 'close' });
    }
  } finally {
    server.closeAllConnections();
    server.close();
    await t.cleanup();
  }
});
