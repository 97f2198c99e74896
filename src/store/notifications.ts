// Postgres LISTEN on a dedicated connection, kept alive across database restarts: when the
// connection drops it reconnects (backing off up to 5 s) and then calls `onReconnect`, because
// notifications sent while it was away are lost and the caller must re-read what they announce.
import pg from 'pg';

export interface ListenerOptions {
  url: string;
  channels: readonly string[];
  onNotify(channel: string, payload: string): void;
  /** After every (re)connection: re-read the state the channels announce. */
  onReconnect?(): void;
  log?(message: string, fields?: Record<string, unknown>): void;
}

export class DatabaseListener {
  private client: pg.Client | undefined;
  private closed = false;
  private retryMs = 250;
  private timer: NodeJS.Timeout | undefined;
  private connectedOnce = false;

  constructor(private readonly options: ListenerOptions) {}

  /** Resolves once listening (or after the first failed try; it keeps trying in the background). */
  async start(): Promise<void> {
    await this.connect();
  }

  get connected(): boolean {
    return this.client !== undefined;
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.options.url, connectionTimeoutMillis: 2000 });
    const lost = (error?: Error) => {
      if (this.client !== client) return;
      this.client = undefined;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (!this.closed) {
        this.options.log?.('database listener lost its connection; reconnecting', { error: error?.message });
        this.schedule();
      }
    };
    client.on('error', lost);
    client.on('end', () => lost());
    try {
      await client.connect();
      for (const channel of this.options.channels) await client.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
    } catch {
      client.removeAllListeners();
      client.on('error', () => undefined);
      void client.end().catch(() => undefined);
      this.schedule();
      return;
    }
    if (this.closed) {
      void client.end().catch(() => undefined);
      return;
    }
    client.on('notification', (n) => this.options.onNotify(n.channel, n.payload ?? ''));
    this.client = client;
    this.retryMs = 250;
    if (this.connectedOnce) this.options.log?.('database listener reconnected');
    this.connectedOnce = true;
    this.options.onReconnect?.();
  }

  private schedule(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, this.retryMs);
    this.timer.unref();
    this.retryMs = Math.min(5000, this.retryMs * 2);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}
