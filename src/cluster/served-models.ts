// Which models every replica should serve, in the shared database: a row per model that was loaded
// or unloaded through any replica (or produced by a trainer worker), announced on a channel so the
// other replicas follow within a moment instead of at their next restart.
import { query, type Pool } from '../store/postgres.ts';

export const MODELS_CHANNEL = 'clinvqa_models';

export interface ServedModel {
  id: string;
  package_dir: string;
  state: 'loaded' | 'unloaded';
}

export async function announceModel(pool: Pool, model: ServedModel): Promise<void> {
  await query(
    pool,
    `WITH m AS (
       INSERT INTO served_models (id, package_dir, state, updated_at) VALUES ($1, $2, $3, now())
       ON CONFLICT (id) DO UPDATE SET package_dir = EXCLUDED.package_dir, state = EXCLUDED.state, updated_at = now() RETURNING id
     ) SELECT pg_notify('${MODELS_CHANNEL}', id) FROM m`,
    [model.id, model.package_dir, model.state],
  );
}

export async function servedModels(pool: Pool): Promise<ServedModel[]> {
  const { rows } = await query<ServedModel>(pool, 'SELECT id, package_dir, state FROM served_models ORDER BY id');
  return rows;
}

/**
 * Takes the pending canary of the fine-tune job that produced `model`, once for the whole
 * deployment: the replica whose UPDATE flips the flag applies it. Null when there is none to apply.
 */
export async function takePendingCanary(pool: Pool, model: string): Promise<{ jobId: string; share: number } | null> {
  const { rows } = await query<{ id: string; share: number }>(
    pool,
    `UPDATE fine_tune_jobs SET canary_applied = TRUE
     WHERE result_model = $1 AND status = 'succeeded' AND NOT canary_applied AND spec->>'canary_weight' IS NOT NULL
     RETURNING id, (spec->>'canary_weight')::float8 AS share`,
    [model],
  );
  return rows[0] ? { jobId: rows[0].id, share: rows[0].share } : null;
}
