// Versioned schema of the shared database. Every process applies the missing migrations at start,
// under a session-level advisory lock: replicas and workers starting together queue on the lock, and
// the one that applies a version records it in the same transaction, so each runs exactly once.
// Append new migrations; never edit one that has shipped.
import type { PoolClient } from 'pg';
import { translateDbError, type Pool } from './postgres.ts';

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** Arbitrary constant shared by every clinvqa process: the key of the migration lock. */
const MIGRATION_LOCK_KEY = 7_201_515_001;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'jobs, A/B table, models, feedback, audit',
    sql: `
      CREATE TABLE fine_tune_jobs (
        seq              BIGSERIAL UNIQUE,
        id               TEXT PRIMARY KEY,
        status           TEXT NOT NULL CHECK (status IN ('validating_files','queued','running','succeeded','failed','cancelled')),
        base_model       TEXT NOT NULL,
        dataset_sha256   TEXT,
        hyperparameters  JSONB NOT NULL,
        spec             JSONB NOT NULL,
        progress         JSONB NOT NULL,
        metrics          JSONB,
        created_at       TIMESTAMPTZ NOT NULL,
        started_at       TIMESTAMPTZ,
        finished_at      TIMESTAMPTZ,
        result_model     TEXT,
        error            JSONB,
        attempts         INTEGER NOT NULL DEFAULT 0,
        crashes          INTEGER NOT NULL DEFAULT 0,
        cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
        worker_pid       INTEGER,
        lease_owner      TEXT,
        lease_expires_at TIMESTAMPTZ,
        queue_job_id     TEXT,
        canary_applied   BOOLEAN NOT NULL DEFAULT FALSE
      );
      CREATE INDEX fine_tune_jobs_status ON fine_tune_jobs (status, seq);
      CREATE TABLE fine_tune_events (
        id         BIGSERIAL PRIMARY KEY,
        job_id     TEXT NOT NULL REFERENCES fine_tune_jobs (id),
        created_at TIMESTAMPTZ NOT NULL,
        level      TEXT NOT NULL,
        type       TEXT NOT NULL,
        message    TEXT NOT NULL,
        data       JSONB
      );
      CREATE INDEX fine_tune_events_job ON fine_tune_events (job_id, id);
      CREATE TABLE fine_tune_checkpoints (
        job_id     TEXT NOT NULL REFERENCES fine_tune_jobs (id),
        step       INTEGER NOT NULL,
        worker     TEXT NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (job_id, step)
      );
      CREATE TABLE ab_tables (
        version    INTEGER PRIMARY KEY,
        origin     TEXT NOT NULL,
        body       JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now()
      );
      CREATE TABLE served_models (
        id          TEXT PRIMARY KEY,
        package_dir TEXT NOT NULL,
        state       TEXT NOT NULL CHECK (state IN ('loaded','unloaded')),
        updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
      );
      CREATE TABLE responses (
        response_id   TEXT PRIMARY KEY,
        model         TEXT NOT NULL,
        variant       TEXT NOT NULL,
        table_version INTEGER,
        client_key_id TEXT,
        latency_ms    DOUBLE PRECISION NOT NULL,
        created_at    TIMESTAMPTZ NOT NULL
      );
      CREATE INDEX responses_by_variant_latency ON responses (variant, latency_ms);
      CREATE TABLE feedback (
        response_id    TEXT PRIMARY KEY REFERENCES responses (response_id),
        correct        BOOLEAN,
        rating         INTEGER CHECK (rating BETWEEN 1 AND 5),
        correct_answer TEXT,
        key_id         TEXT,
        recorded_at    TIMESTAMPTZ NOT NULL,
        revisions      INTEGER NOT NULL
      );
      CREATE TABLE audit_log (
        id       TEXT PRIMARY KEY,
        seq      BIGSERIAL UNIQUE,
        time     TIMESTAMPTZ NOT NULL,
        replica  TEXT NOT NULL,
        entry    JSONB NOT NULL
      );
    `,
  },
];

/** Applies the missing migrations; returns the versions applied by this call. */
export async function migrate(pool: Pool, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    return translateDbError(error);
  }
  const applied: number[] = [];
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
    try {
      await client.query(`CREATE TABLE IF NOT EXISTS clinvqa_schema_migrations (
        version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`);
      const done = new Set((await client.query<{ version: number }>('SELECT version FROM clinvqa_schema_migrations')).rows.map((r) => r.version));
      const newest = Math.max(0, ...done);
      const known = Math.max(0, ...migrations.map((m) => m.version));
      if (newest > known) throw new Error(`the database has schema version ${newest}; this build knows up to ${known} (upgrade this process)`);
      for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
        if (done.has(m.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query('INSERT INTO clinvqa_schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined);
          throw error;
        }
        applied.push(m.version);
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    }
  } catch (error) {
    client.release(true);
    return translateDbError(error);
  }
  client.release();
  return applied;
}
