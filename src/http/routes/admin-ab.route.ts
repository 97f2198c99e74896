// GET /admin/ab, PUT /admin/ab, GET /admin/ab/report, POST /admin/models/{id}/promote and
// /rollback. HTTP only: the table's rules live in routing/ab-table.ts, its persistence and atomic
// swap in routing/ab-table-store.ts, the statistics in feedback/ab-report.ts. Roles: `admin` on all;
// enforced by the server's auth middleware mounted before this router.
import { Router, type Request, type Response } from 'express';
import { ApiError } from '../../errors.ts';
import { buildAbReport } from '../../feedback/ab-report.ts';
import type { FeedbackRepository } from '../../feedback/feedback-store.ts';
import { AbTableError, toAbTableJson, type AbTable, type AbVariant } from '../../routing/ab-table.ts';
import type { AbTableBackend } from '../../routing/ab-table-store.ts';
import { jsonBody } from './feedback.route.ts';

/** What an A/B change adds to the audit log: versions, model ids and weights (no patient data). */
export interface AbAuditEvent {
  action: 'ab_table.replace' | 'ab_table.promote' | 'ab_table.rollback';
  /** The model promoted or rolled back. */
  model?: string;
  previous_version: number;
  version: number;
  variants: { name: string; model: string; weight: number }[];
  sticky_header: string;
}

export interface AdminAbRouterDeps {
  /** The table in effect; PUT validates models against the store's `isKnownModel`. */
  table: Pick<AbTableBackend, 'current' | 'replaceFromInput' | 'promote' | 'rollback'>;
  stats: Pick<FeedbackRepository, 'variantStats'>;
  /**
   * Called after a change has taken effect. Rejected changes are not reported here; the server's
   * per-request audit line records them with their status.
   */
  audit(event: AbAuditEvent, req: Request, res: Response): void;
  /**
   * Before a promotion: make sure the model is loaded (e.g. registry.ensureLoaded on its package) and
   * say whether it now is; false → 404. Without it, only already-loaded models can be promoted.
   */
  ensureModel?(id: string): Promise<boolean>;
}

const TABLE_BODY_LIMIT = '32kb';

export function createAdminAbRouter(deps: AdminAbRouterDeps): Router {
  const router = Router();

  router.get('/admin/ab', (_req, res) => {
    res.json(toAbTableJson(deps.table.current));
  });

  /** Runs one table change, audits it once it is in effect, and answers with the new table. */
  const change = async (
    req: Request,
    res: Response,
    action: AbAuditEvent['action'],
    apply: () => AbTable | Promise<AbTable>,
    model?: string,
  ): Promise<void> => {
    const previous = deps.table.current;
    const next = await apply();
    deps.audit(
      {
        action,
        ...(model !== undefined ? { model } : {}),
        previous_version: previous.version,
        version: next.version,
        variants: next.variants.map(plainVariant),
        sticky_header: next.stickyHeader,
      },
      req,
      res,
    );
    res.json(toAbTableJson(next));
  };

  router.put('/admin/ab', jsonBody(TABLE_BODY_LIMIT), async (req, res) => {
    await change(req, res, 'ab_table.replace', () => deps.table.replaceFromInput(req.body));
  });

  router.post('/admin/models/:id/promote', async (req, res) => {
    const id = req.params.id;
    const notFound = () => ApiError.of('model_not_found', `No model "${id}" is loaded or can be loaded.`);
    if (deps.ensureModel !== undefined && !(await deps.ensureModel(id))) throw notFound();
    await change(
      req,
      res,
      'ab_table.promote',
      async () => {
        try {
          return await deps.table.promote(id);
        } catch (error) {
          // The only way a promotion's table is invalid: its model is not loaded.
          throw error instanceof AbTableError ? notFound() : error;
        }
      },
      id,
    );
  });

  router.post('/admin/models/:id/rollback', async (req, res) => {
    await change(req, res, 'ab_table.rollback', () => deps.table.rollback(req.params.id), req.params.id);
  });

  router.get('/admin/ab/report', async (_req, res) => {
    res.json(buildAbReport(await deps.stats.variantStats(), deps.table.current));
  });

  return router;
}

function plainVariant(v: AbVariant): { name: string; model: string; weight: number } {
  return { name: v.name, model: v.model, weight: v.weight };
}
