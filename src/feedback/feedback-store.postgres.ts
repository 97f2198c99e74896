// The A/B loop's memory in the shared Postgres database (cluster mode): every replica's answered
// requests and the clinicians' feedback in one place, so /admin/ab/report counts all of them. Same
// contract as the SQLite FeedbackStore (shared suite in test/feedback/feedback-repository.test.ts).
//
// Recording a response sits on the inference path, which must not wait for (or fail with) the
// database: the record is appended to this replica's local spool (store/spool.ts) and moved into
// Postgres in batches; a replica killed -9 leaves the spool for its next start. Feedback first drains
// the spool, so feedback on an answer just given finds its response; feedback on an answer another
// replica gave a moment ago waits one batch interval before it is a 404.
import {
  ResponseNotFoundError,
  checkFeedbackInput,
  checkResponseInput,
  type FeedbackInput,
  type FeedbackRecord,
  type FeedbackRepository,
  type ResponseRecordInput,
  type VariantStats,
} from './feedback-store.ts';
import path from 'node:path';
import { query, transaction, type Pool } from '../store/postgres.ts';
import { Spool } from '../store/spool.ts';

interface FeedbackRow {
  response_id: string;
  model: string;
  variant: string;
  correct: boolean | null;
  rating: number | null;
  correct_answer: string | null;
  recorded_at: Date;
}

export interface PostgresFeedbackOptions {
  /** The shared data dir; the spool lives under <dataDir>/spool/responses. */
  dataDir: string;
  /** Names this process's spool folder. */
  instance: string;
  /** Batch interval of response records (default 200 ms). */
  flushIntervalMs?: number;
  now?(): Date;
  log?(message: string, fields?: Record<string, unknown>): void;
}

interface SpooledResponse {
  responseId: string;
  model: string;
  variant: string;
  tableVersion: number | null;
  clientKeyId: string | null;
  latencyMs: number;
  createdAt: string;
}

export class PostgresFeedbackStore implements FeedbackRepository {
  private readonly spool: Spool<SpooledResponse>;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly pool: Pool,
    private readonly options: PostgresFeedbackOptions,
  ) {
    this.spool = new Spool(path.join(options.dataDir, 'spool', 'responses'), options.instance);
    this.timer = setInterval(() => void this.flush().catch(() => undefined), options.flushIntervalMs ?? 200);
    this.timer.unref();
    void this.spool.sweepOthers((records) => this.insert(records)).catch(() => undefined);
  }

  /** Synchronous and local: once it returns, the record survives a kill -9 of this process. */
  recordResponse(input: ResponseRecordInput): void {
    checkResponseInput(input);
    this.spool.append({
      responseId: input.responseId,
      model: input.model,
      variant: input.variant,
      tableVersion: input.tableVersion ?? null,
      clientKeyId: input.clientKeyId ?? null,
      latencyMs: input.latencyMs,
      createdAt: (input.createdAt ?? this.now()).toISOString(),
    });
  }

  /** Moves every spooled response record into the database; rejects (keeping them) when it is away. */
  flush(): Promise<void> {
    return this.spool.drain((records) => this.insert(records));
  }

  private async insert(records: SpooledResponse[]): Promise<void> {
    const values: unknown[] = [];
    const rows = records.map((r, i) => {
      values.push(r.responseId, r.model, r.variant, r.tableVersion, r.clientKeyId, r.latencyMs, r.createdAt);
      const o = i * 7;
      return `($${o + 1}, $${o + 2}, $${o + 3}, $${o + 4}, $${o + 5}, $${o + 6}, $${o + 7})`;
    });
    // A batch sent twice (or swept by another replica) lands once: the first write wins.
    await query(
      this.pool,
      `INSERT INTO responses (response_id, model, variant, table_version, client_key_id, latency_ms, created_at) VALUES ${rows.join(', ')} ON CONFLICT (response_id) DO NOTHING`,
      values,
    );
  }

  async recordFeedback(input: FeedbackInput): Promise<FeedbackRecord> {
    checkFeedbackInput(input);
    await this.flush();
    try {
      return await this.writeFeedback(input);
    } catch (error) {
      if (!(error instanceof ResponseNotFoundError)) throw error;
      // Another replica may have answered it moments ago and not written its batch yet: wait out one batch.
      await new Promise((resolve) => setTimeout(resolve, 2 * (this.options.flushIntervalMs ?? 200) + 100));
      return this.writeFeedback(input);
    }
  }

  private async writeFeedback(input: FeedbackInput): Promise<FeedbackRecord> {
    const row = await transaction(this.pool, async (client) => {
      const exists = await client.query('SELECT 1 FROM responses WHERE response_id = $1 FOR SHARE', [input.responseId]);
      if (exists.rowCount === 0) throw new ResponseNotFoundError(input.responseId);
      await client.query(
        `INSERT INTO feedback (response_id, correct, rating, correct_answer, key_id, recorded_at, revisions)
         VALUES ($1, $2, $3, $4, $5, $6, 1)
         ON CONFLICT (response_id) DO UPDATE SET correct = EXCLUDED.correct, rating = EXCLUDED.rating, correct_answer = EXCLUDED.correct_answer,
           key_id = EXCLUDED.key_id, recorded_at = EXCLUDED.recorded_at, revisions = feedback.revisions + 1`,
        [input.responseId, input.correct ?? null, input.rating ?? null, input.correctAnswer ?? null, input.keyId ?? null, this.now()],
      );
      return (await client.query<FeedbackRow>(SELECT_FEEDBACK, [input.responseId])).rows[0]!;
    });
    return toRecord(row);
  }

  async getFeedback(responseId: string): Promise<(FeedbackRecord & { correctAnswer: string | null }) | undefined> {
    const { rows } = await query<FeedbackRow>(this.pool, SELECT_FEEDBACK, [responseId]);
    return rows[0] ? { ...toRecord(rows[0]), correctAnswer: rows[0].correct_answer } : undefined;
  }

  async variantStats(): Promise<VariantStats[]> {
    await this.flush().catch(() => undefined); // this replica's latest answers count too, if they can be written
    const { rows: counts } = await query<{ variant: string; model: string; n: string }>(
      this.pool,
      'SELECT variant, model, COUNT(*) AS n FROM responses GROUP BY variant, model ORDER BY variant, n DESC, model',
    );
    const { rows: judgements } = await query<{ variant: string; feedback: string; judged: string; correct: string }>(
      this.pool,
      `SELECT r.variant, COUNT(*) AS feedback, COUNT(f.correct) AS judged, COUNT(*) FILTER (WHERE f.correct) AS correct
       FROM feedback f JOIN responses r USING (response_id) GROUP BY r.variant`,
    );
    // Nearest-rank percentiles, computed in the database: the smallest value with at least q of the values at or below it.
    const { rows: percentiles } = await query<{ variant: string; p50: number; p95: number }>(
      this.pool,
      `SELECT variant, percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50, percentile_disc(0.95) WITHIN GROUP (ORDER BY latency_ms) AS p95
       FROM responses GROUP BY variant`,
    );
    const byVariant = new Map<string, VariantStats>();
    for (const row of counts) {
      let stats = byVariant.get(row.variant);
      if (!stats) {
        stats = { variant: row.variant, models: [], requests: 0, latencyP50Ms: null, latencyP95Ms: null, feedback: 0, judged: 0, correct: 0 };
        byVariant.set(row.variant, stats);
      }
      stats.models.push(row.model);
      stats.requests += Number(row.n);
    }
    for (const row of judgements) {
      const stats = byVariant.get(row.variant)!;
      stats.feedback = Number(row.feedback);
      stats.judged = Number(row.judged);
      stats.correct = Number(row.correct);
    }
    for (const row of percentiles) {
      const stats = byVariant.get(row.variant)!;
      stats.latencyP50Ms = row.p50;
      stats.latencyP95Ms = row.p95;
    }
    return [...byVariant.values()];
  }

  /** Writes out what is spooled (as far as the database allows; the rest waits for the next start). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush().catch((error: unknown) => {
      this.options.log?.('response records stay in the local spool: the database is unavailable', { queued: this.spool.backlog, error: String(error) });
    });
  }

  get queued(): number {
    return this.spool.backlog;
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }
}

const SELECT_FEEDBACK = `SELECT f.response_id, r.model, r.variant, f.correct, f.rating, f.correct_answer, f.recorded_at
  FROM feedback f JOIN responses r USING (response_id) WHERE f.response_id = $1`;

function toRecord(row: FeedbackRow): FeedbackRecord {
  return {
    responseId: row.response_id,
    model: row.model,
    variant: row.variant,
    correct: row.correct,
    rating: row.rating,
    recordedAt: row.recorded_at.toISOString(),
  };
}
