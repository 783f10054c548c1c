// The operators' endpoints of the serving API (API.md: Operations, admin key): each hour's state and
// counts per layer, the daily reconciliation report, backfills, and the adjustments lists.
import { callerOf } from '../common/auth.js';
import { BadRequest, logRequest, requestIdOf, sendApiError, validate } from '../common/http-errors.js';
import { config } from '../common/config.js';
import type { SpeedStore } from '../common/speed-store.js';
import { HOUR_MS, hourOf, isoSeconds } from '../common/time.js';
import type { FinalizedHour, HourFailure, HourRevision } from './batch-store.js';
import { hourState } from './hour-state.js';
import {
  backfillBody,
  checkRange,
  hoursQuery,
  parseDateParam,
  parseTime,
  QUERY_CODES,
  reconciliationQuery,
  type TimeRange,
} from './query.js';
import { adjustmentsQuery } from './serving-routes.js';
import { advertiserOf, type Handler, type ServingContext } from './serving-context.js';

/** The hours [from, to) of an admin read, at most 92 days of them. */
function hourRange(q: { from?: string; to?: string }, ctx: ServingContext): TimeRange {
  return checkRange(parseTime(q.from, 'from'), parseTime(q.to, 'to'), 'hour', ctx.now(), 92 * 24 * HOUR_MS);
}

/** GET /v1/admin/hours — each hour's state and its counts per layer. */
export function adminHours(ctx: ServingContext): Handler {
  return async (req, res) => {
    const q = validate(hoursQuery, req.query, QUERY_CODES);
    const range = hourRange(q, ctx);
    const [hours, revisions, failures] = await Promise.all([
      ctx.batch.finalizedHours(range.from, range.to),
      ctx.batch.hourRevisions(range.from, range.to),
      ctx.batch.hourFailures(range.from, range.to),
    ]);
    const byHour = new Map(hours.map((h) => [h.hour, h]));
    const speed = await speedHourTotals(ctx.deps.speedStore, range);
    if (speed.detail) logRequest('serving', req, res, `speed layer unavailable: ${speed.detail}`);
    const list = [];
    for (let h = range.from; h < range.to; h += HOUR_MS)
      list.push(hourRow(h, byHour.get(h), failures.get(h), revisions.get(h) ?? [], speed.byHour));
    res.json({
      from: isoSeconds(range.from),
      to: isoSeconds(range.to),
      hours: list,
      ...(speed.reason && {
        unavailable: { layer: 'speed', reason: speed.reason, requestId: requestIdOf(res) },
      }),
    });
  };
}

/**
 * One hour of GET /v1/admin/hours: its state (hour-state.ts) and what it rests on — the failure or
 * the wait since its last finalization (the sweep retries both; waiting is not failing), its
 * finalization and revisions, its counts per layer (`speed` undefined: the speed layer did not answer).
 */
function hourRow(
  h: number,
  f: FinalizedHour | undefined,
  failure: HourFailure | undefined,
  revisions: readonly HourRevision[],
  speed: ReadonlyMap<number, number> | undefined,
) {
  const state = hourState(f, failure);
  // The record the state rests on when the hour is waiting or failed.
  const unsettled = state === 'waiting' || state === 'failed' ? failure : undefined;
  return {
    hour: isoSeconds(h),
    state,
    ...(unsettled &&
      state === 'waiting' && {
        waitingFor: unsettled.reason,
        waitingSince: new Date(unsettled.failedAt).toISOString(),
        workflowId: unsettled.workflowId,
      }),
    ...(unsettled &&
      state === 'failed' && {
        failure: {
          reason: unsettled.reason,
          failedAt: new Date(unsettled.failedAt).toISOString(),
          workflowId: unsettled.workflowId,
        },
      }),
    ...(f && {
      revision: f.revision,
      runId: f.runId,
      workflowId: f.workflowId,
      finalizedAt: new Date(f.finalizedAt).toISOString(),
      revisions: revisions.map((r) => ({
        revision: r.revision,
        finalizedAt: new Date(r.finalizedAt).toISOString(),
        workflowId: r.workflowId,
        runId: r.runId,
        validClicks: r.validClicks,
        events: r.events,
      })),
    }),
    counts: {
      batch: f ? f.validClicks : null,
      batchEvents: f ? f.events : null,
      speed: speed ? (speed.get(h) ?? 0) : null,
    },
  };
}

async function speedHourTotals(
  store: SpeedStore,
  range: TimeRange,
): Promise<{ byHour?: Map<number, number>; reason?: string; detail?: string }> {
  try {
    const totals = await store.hourTotals(range.from, range.to);
    return { byHour: new Map(totals.map((c) => [c.start, c.clicks])) };
  } catch (e) {
    return { reason: 'the speed layer did not answer; its counts are missing', detail: (e as Error).message };
  }
}

/** GET /v1/admin/reconciliation?date= — the stored daily report. */
export function reconciliation(ctx: ServingContext): Handler {
  return async (req, res) => {
    const date = parseDateParam(validate(reconciliationQuery, req.query, QUERY_CODES).date);
    const stored = await ctx.batch.reconciliation(date);
    if (!stored) return sendApiError(res, 404, 'not_found', `no reconciliation report for ${date} yet`);
    res.json({
      date,
      createdAt: new Date(stored.createdAt).toISOString(),
      speedTotal: stored.report.speedTotal,
      batchTotal: stored.report.batchTotal,
      report: stored.report,
    });
  };
}

/** POST /v1/admin/backfills {from, to} — starts (or finds the running) backfill of the window. */
export function backfill(ctx: ServingContext): Handler {
  return async (req, res) => {
    const fields = validate(backfillBody, req.body ?? {}, {}, 'invalid_range');
    const asText = (v: unknown): unknown => (typeof v === 'number' ? String(v) : v);
    const from = parseTime(asText(fields.from), 'from');
    const to = parseTime(asText(fields.to), 'to');
    if (from === undefined || to === undefined)
      throw new BadRequest('invalid_range', 'send {"from", "to"}: hour-aligned ISO-8601 UTC times');
    const range = checkRange(from, to, 'hour', ctx.now(), 92 * 24 * HOUR_MS, '92 days');
    if (range.to > hourOf(ctx.now()) + HOUR_MS)
      throw new BadRequest('invalid_range', 'a backfill cannot reach past the current hour');
    // A recount of an hour whose raw files are gone would wipe its finals: refused (the worker
    // refuses too). The cutoff retention recorded, or the retention window on this clock.
    const days = ctx.deps.rawRetentionDays ?? config.BATCH_RAW_RETENTION_DAYS;
    const clockCutoff = hourOf(ctx.now()) - days * 24 * HOUR_MS;
    const recorded = await ctx.batch.rawCutoff(ctx.deps.rawPrefix ?? config.BATCH_S3_PREFIX);
    const cutoff = recorded === undefined ? clockCutoff : Math.min(recorded, clockCutoff);
    if (range.from < cutoff)
      return sendApiError(
        res,
        409,
        'past_raw_cutoff',
        `the raw cutoff is ${isoSeconds(cutoff)}: raw click files of earlier hours are past their retention ` +
          `(${days} days), so those hours cannot be recounted and their finals are kept; start the backfill at ` +
          `${isoSeconds(cutoff)} or later`,
      );
    const { workflowId } = await ctx.deps.startBackfill({ from: range.from, to: range.to });
    res.status(202).json({ workflowId, from: isoSeconds(range.from), to: isoSeconds(range.to) });
  };
}

/**
 * GET /v1/admin/adjustments and /v1/advertisers/me/adjustments — what later revisions changed in
 * final counts already served (billed), per ad and per advertiser, for hours in [from, to).
 */
export function adjustments(ctx: ServingContext, who: 'admin' | 'advertiser'): Handler {
  return async (req, res) => {
    const q = validate(adjustmentsQuery, req.query, {
      ...QUERY_CODES,
      advertiserId: 'invalid_advertiser_id',
    });
    const range = hourRange(q, ctx);
    const advertiserId =
      who === 'advertiser' ? advertiserOf(callerOf(res), q.advertiserId) : q.advertiserId || undefined;
    const limit = 10_000;
    const rows = await ctx.batch.adjustments(range.from, range.to, advertiserId, limit + 1);
    res.json({
      from: isoSeconds(range.from),
      to: isoSeconds(range.to),
      adjustments: rows.slice(0, limit).map((a) => ({
        hour: isoSeconds(a.hour),
        revision: a.revision,
        finalizedAt: new Date(a.finalizedAt).toISOString(),
        ...(a.scope === 'ad' && { adId: a.id }),
        advertiserId: a.advertiserId,
        clicksBefore: a.clicksBefore,
        clicksAfter: a.clicksAfter,
        delta: a.clicksAfter - a.clicksBefore,
      })),
      truncated: rows.length > limit,
    });
  };
}
