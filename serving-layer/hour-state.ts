// The state of an hour, read from what the batch layer recorded about it: its last finalization
// (finalized_hours) and its last compaction that did not finalize it (hour_failures). One rule, used by
// GET /v1/admin/hours (router's admin handlers) and the operators' status (ops-status.ts). Pure.
//
// Why here, in the serving layer: only the serving layer derives states; the batch layer records
// facts (a finalization, a failure of some kind) and never reads a state back. The failure kinds it
// writes are the `kind` column's values (migrations), which this module names for its readers.

/** Why an hour's last compaction did not finalize it: `waiting` for completeness (not an error), or `failed`. */
export type HourFailureKind = 'failed' | 'waiting';

/** The states of GET /v1/admin/hours (API.md), in the order an hour usually goes through them. */
export const HOUR_STATES = ['open', 'waiting', 'failed', 'finalized'] as const;
export type HourState = (typeof HOUR_STATES)[number];

/**
 * An hour's state: a failure record newer than the last finalization (or with none) makes it
 * `waiting` or `failed` — the sweep retries both; else `finalized` once finalized, `open` before.
 */
export function hourState(
  finalization: { finalizedAt: number } | undefined,
  failure: { failedAt: number; kind: HourFailureKind } | undefined,
): HourState {
  const unsettled = failure !== undefined && (!finalization || failure.failedAt > finalization.finalizedAt);
  if (unsettled) return failure.kind;
  return finalization ? 'finalized' : 'open';
}

/** The operators' names of the states (ops-status.ts, Prometheus labels of adclick_ops_hours). */
export type OpsHourState = 'final' | 'failed' | 'waiting' | 'not_final';

export const OPS_HOUR_STATE: Readonly<Record<HourState, OpsHourState>> = {
  open: 'not_final',
  waiting: 'waiting',
  failed: 'failed',
  finalized: 'final',
};
