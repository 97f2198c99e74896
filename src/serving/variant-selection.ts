// What the inference services need from A/B routing and the feedback store, as two small
// interfaces. app.ts adapts the A/B table and the FeedbackStore (src/routing, src/feedback) to
// them; unit tests pass plain objects.
import type { ResponseRecordInput } from '../feedback/feedback-store.ts';

export interface VariantChoice {
  /** Model id (package directory name) that will answer. */
  model: string;
  /** Variant name reported in the response, X-Model-Variant, metrics and the A/B report. */
  variant: string;
  /** Version of the A/B table the variant was drawn from. */
  tableVersion?: number;
}

export interface VariantSelector {
  /** Header that names the client for sticky routing (the A/B table's `sticky_header`). */
  stickyHeader(): string;
  /** A variant among `available` model ids; undefined when none of the table's models is loaded. */
  choose(clientId: string | undefined, available: readonly string[]): VariantChoice | undefined;
}

/** What the feedback store keeps about an answer (no patient text); defined once, by the store. */
export type ServedResponse = ResponseRecordInput & { createdAt: Date };

export interface ResponseRecorder {
  /** Remembers which variant produced a response, so feedback on it can be attributed. */
  recordResponse(response: ServedResponse): void | Promise<void>;
}

/** Variant name of responses whose request named its model: kept apart from the A/B arms. */
export { OVERRIDE_VARIANT } from '../routing/ab-table.ts';

/** Without an A/B table: the first loaded model in id order, named after itself. */
export const firstLoadedModel: VariantSelector = {
  stickyHeader: () => 'X-Client-Id',
  choose: (_clientId, available) => (available.length > 0 ? { model: available[0]!, variant: available[0]! } : undefined),
};
