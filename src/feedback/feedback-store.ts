// The A/B loop's memory: one row per answered request (which variant and model answered, how fast)
// and the clinicians' feedback on it, in SQLite (WAL) under the data dir. No image, question or
// answer text is stored for a response. Feedback's `correct_answer` IS clinical text — kept because a
// corrected answer is exactly the labelled data a later fine-tune wants — so it is never logged and
// never returned by anything but `getFeedback`, and no error message here contains it.
//
// Feedback sent again for the same response replaces the earlier one (last wins, as openapi.yaml
// says): a clinician who clicked the wrong button can correct themselves, and the report counts each
// response at most once.
import fs from 'node:fs';
import path from 'node:path';
import { openSqlite, type SqliteDatabase, type Statement } from './sqlite.ts';

export const FEEDBACK_DB_FILE = 'feedback.sqlite';
export const MAX_CORRECT_ANSWER_LENGTH = 2000;
export const MAX_RESPONSE_ID_LENGTH = 128;
const SCHEMA_VERSION = 1;

export interface ResponseRecordInput {
  responseId: string;
  model: string;
  /** The A/B variant name, or "override" when the request named its model. */
  variant: string;
  /** The A/B table version the variant was drawn from (absent for overrides). */
  tableVersion?: number;
  /** Id of the API key that made the request (never the key). */
  clientKeyId?: string;
  /** Time to answer, as the server measured it (request received → answer ready). */
  latencyMs: number;
  createdAt?: Date;
}

export interface FeedbackInput {
  responseId: string;
  correct?: boolean;
  /** 1–5. */
  rating?: number;
  /** The right answer, if the clinician gave one. Clinical text: stored, never logged. */
  correctAnswer?: string;
  /** Id of the API key that sent the feedback. */
  keyId?: string;
}

/** Feedback as it may be shown or logged: no free text. */
export interface FeedbackRecord {
  responseId: string;
  model: string;
  variant: string;
  correct: boolean | null;
  rating: number | null;
  recordedAt: string;
}

export interface VariantStats {
  variant: string;
  /** Models that answered under this variant name, most requests first. */
  models: string[];
  requests: number;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  /** Responses with any feedback. */
  feedback: number;
  /** Responses whose feedback says correct or not. */
  judged: number;
  correct: number;
}

export class ResponseNotFoundError extends Error {
  override readonly name = 'ResponseNotFoundError';
  constructor(readonly responseId: string) {
    super('no response with this id was recorded');
  }
}

export class DuplicateResponseError extends Error {
  override readonly name = 'DuplicateResponseError';
  constructor(readonly responseId: string) {
    super('a response with this id was already recorded');
  }
}

/** Input the store refuses (the HTTP route validates first; this guards other callers). */
export class FeedbackInputError extends Error {
  override readonly name = 'FeedbackInputError';
}

interface FeedbackRow {
  response_id: string;
  model: string;
  variant: string;
  correct: number | null;
  rating: number | null;
  correct_answer: string | null;
  recorded_at: number;
}

/** What serving and the routes ask of a feedback store: SQLite (this file) or Postgres (feedback-store.postgres.ts). */
export interface FeedbackRepository {
  recordResponse(input: ResponseRecordInput): void | Promise<void>;
  recordFeedback(input: FeedbackInput): FeedbackRecord | Promise<FeedbackRecord>;
  getFeedback(
    responseId: string,
  ): (FeedbackRecord & { correctAnswer: string | null }) | undefined | Promise<(FeedbackRecord & { correctAnswer: string | null }) | undefined>;
  variantStats(): VariantStats[] | Promise<VariantStats[]>;
  close(): void | Promise<void>;
}

export class FeedbackStore implements FeedbackRepository {
  private readonly insertResponse: Statement;
  private readonly upsertFeedback: Statement;
  private readonly selectFeedback: Statement<FeedbackRow>;
  private readonly responseExists: Statement<{ one: number }>;
  private readonly latencyAt: Statement<{ latency_ms: number }>;
  private readonly recordFeedbackTx: (input: FeedbackInput, now: number) => FeedbackRow;

  private constructor(
    private readonly db: SqliteDatabase,
    private readonly now: () => Date,
  ) {
    this.insertResponse = db.prepare(
      `INSERT INTO responses (response_id, model, variant, table_version, client_key_id, latency_ms, created_at)
       VALUES (@response_id, @model, @variant, @table_version, @client_key_id, @latency_ms, @created_at)`,
    );
    this.upsertFeedback = db.prepare(
      `INSERT INTO feedback (response_id, correct, rating, correct_answer, key_id, recorded_at, revisions)
       VALUES (@response_id, @correct, @rating, @correct_answer, @key_id, @recorded_at, 1)
       ON CONFLICT (response_id) DO UPDATE SET
         correct = excluded.correct, rating = excluded.rating, correct_answer = excluded.correct_answer,
         key_id = excluded.key_id, recorded_at = excluded.recorded_at, revisions = feedback.revisions + 1`,
    );
    this.selectFeedback = db.prepare(
      `SELECT f.response_id, r.model, r.variant, f.correct, f.rating, f.correct_answer, f.recorded_at
       FROM feedback f JOIN responses r USING (response_id) WHERE f.response_id = ?`,
    );
    this.responseExists = db.prepare('SELECT 1 AS one FROM responses WHERE response_id = ?');
    // Nearest-rank percentile straight off the (variant, latency_ms) index: no rows leave SQLite.
    this.latencyAt = db.prepare('SELECT latency_ms FROM responses WHERE variant = ? ORDER BY latency_ms LIMIT 1 OFFSET ?');
    // Check-then-write in one transaction so the 404 and the write see the same state.
    this.recordFeedbackTx = db.transaction((input: FeedbackInput, now: number): FeedbackRow => {
      if (this.responseExists.get(input.responseId) === undefined) throw new ResponseNotFoundError(input.responseId);
      this.upsertFeedback.run({
        response_id: input.responseId,
        correct: input.correct === undefined ? null : input.correct ? 1 : 0,
        rating: input.rating ?? null,
        correct_answer: input.correctAnswer ?? null,
        key_id: input.keyId ?? null,
        recorded_at: now,
      });
      return this.selectFeedback.get(input.responseId)!;
    });
  }

  /** Opens (or creates) `<dataDir>/feedback.sqlite`. */
  static open(dataDir: string, options: { now?: () => Date } = {}): FeedbackStore {
    fs.mkdirSync(dataDir, { recursive: true });
    const db = openSqlite(path.join(dataDir, FEEDBACK_DB_FILE));
    try {
      migrate(db);
    } catch (error) {
      db.close();
      throw error;
    }
    return new FeedbackStore(db, options.now ?? (() => new Date()));
  }

  /** Records an answered request. Call once per response id, when the answer is ready. */
  recordResponse(input: ResponseRecordInput): void {
    checkResponseInput(input);
    try {
      this.insertResponse.run({
        response_id: input.responseId,
        model: input.model,
        variant: input.variant,
        table_version: input.tableVersion ?? null,
        client_key_id: input.clientKeyId ?? null,
        latency_ms: input.latencyMs,
        created_at: (input.createdAt ?? this.now()).getTime(),
      });
    } catch (error) {
      if ((error as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new DuplicateResponseError(input.responseId);
      throw error;
    }
  }

  /** Stores feedback (replacing earlier feedback on the same response). ResponseNotFoundError if unknown. */
  recordFeedback(input: FeedbackInput): FeedbackRecord {
    checkFeedbackInput(input);
    return toRecord(this.recordFeedbackTx(input, this.now().getTime()));
  }

  /** Feedback on a response with its correct answer (for building fine-tuning sets; do not log). */
  getFeedback(responseId: string): (FeedbackRecord & { correctAnswer: string | null }) | undefined {
    const row = this.selectFeedback.get(responseId);
    return row === undefined ? undefined : { ...toRecord(row), correctAnswer: row.correct_answer };
  }

  /** Per-variant traffic, latency percentiles and feedback counts over everything recorded. */
  variantStats(): VariantStats[] {
    const counts = this.db
      .prepare<{ variant: string; model: string; n: number }>(
        'SELECT variant, model, COUNT(*) AS n FROM responses GROUP BY variant, model ORDER BY variant, n DESC, model',
      )
      .all();
    const judgements = this.db
      .prepare<{ variant: string; feedback: number; judged: number; correct: number | null }>(
        `SELECT r.variant, COUNT(*) AS feedback, SUM(f.correct IS NOT NULL) AS judged, SUM(f.correct = 1) AS correct
         FROM feedback f JOIN responses r USING (response_id) GROUP BY r.variant`,
      )
      .all();
    const byVariant = new Map<string, VariantStats>();
    for (const row of counts) {
      let stats = byVariant.get(row.variant);
      if (!stats) {
        stats = { variant: row.variant, models: [], requests: 0, latencyP50Ms: null, latencyP95Ms: null, feedback: 0, judged: 0, correct: 0 };
        byVariant.set(row.variant, stats);
      }
      stats.models.push(row.model);
      stats.requests += row.n;
    }
    for (const row of judgements) {
      const stats = byVariant.get(row.variant)!;
      stats.feedback = row.feedback;
      stats.judged = row.judged;
      stats.correct = row.correct ?? 0;
    }
    for (const stats of byVariant.values()) {
      stats.latencyP50Ms = this.percentile(stats.variant, stats.requests, 0.5);
      stats.latencyP95Ms = this.percentile(stats.variant, stats.requests, 0.95);
    }
    return [...byVariant.values()];
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Nearest-rank percentile: the smallest value with at least q of the values at or below it. */
  private percentile(variant: string, n: number, q: number): number | null {
    if (n === 0) return null;
    const rank = Math.max(1, Math.ceil(q * n));
    return this.latencyAt.get(variant, rank - 1)?.latency_ms ?? null;
  }
}

function migrate(db: SqliteDatabase): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) throw new Error(`${FEEDBACK_DB_FILE} has schema ${version}; this server knows up to ${SCHEMA_VERSION}`);
  if (version === SCHEMA_VERSION) return;
  db.exec(`
    CREATE TABLE IF NOT EXISTS responses (
      response_id   TEXT PRIMARY KEY,
      model         TEXT NOT NULL,
      variant       TEXT NOT NULL,
      table_version INTEGER,
      client_key_id TEXT,
      latency_ms    REAL NOT NULL,
      created_at    INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS responses_by_variant_latency ON responses (variant, latency_ms);
    CREATE TABLE IF NOT EXISTS feedback (
      response_id    TEXT PRIMARY KEY REFERENCES responses (response_id),
      correct        INTEGER CHECK (correct IN (0, 1)),
      rating         INTEGER CHECK (rating BETWEEN 1 AND 5),
      correct_answer TEXT,
      key_id         TEXT,
      recorded_at    INTEGER NOT NULL,
      revisions      INTEGER NOT NULL
    );
    PRAGMA user_version = ${SCHEMA_VERSION};
  `);
}

/** The store's own guard on a response record (the same for every backend). */
export function checkResponseInput(input: ResponseRecordInput): void {
  checkResponseId(input.responseId);
  if (!Number.isFinite(input.latencyMs) || input.latencyMs < 0) throw new FeedbackInputError('latencyMs must be a finite number ≥ 0');
}

/** The store's own guard on feedback (the same for every backend). */
export function checkFeedbackInput(input: FeedbackInput): void {
  checkResponseId(input.responseId);
  if (input.correct === undefined && input.rating === undefined) throw new FeedbackInputError('give correct or rating');
  if (input.rating !== undefined && !(Number.isInteger(input.rating) && input.rating >= 1 && input.rating <= 5)) {
    throw new FeedbackInputError('rating must be an integer from 1 to 5');
  }
  if (input.correctAnswer !== undefined && (input.correctAnswer.length === 0 || input.correctAnswer.length > MAX_CORRECT_ANSWER_LENGTH)) {
    throw new FeedbackInputError(`correct_answer must be 1 to ${MAX_CORRECT_ANSWER_LENGTH} characters`);
  }
}

function checkResponseId(id: string): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_RESPONSE_ID_LENGTH) {
    throw new FeedbackInputError(`response id must be 1 to ${MAX_RESPONSE_ID_LENGTH} characters`);
  }
}

function toRecord(row: FeedbackRow): FeedbackRecord {
  return {
    responseId: row.response_id,
    model: row.model,
    variant: row.variant,
    correct: row.correct === null ? null : row.correct === 1,
    rating: row.rating,
    recordedAt: new Date(row.recorded_at).toISOString(),
  };
}
