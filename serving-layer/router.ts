// The serving layer's HTTP API (API.md: Metrics and Operations): merged click counts per ad and per
// advertiser, and the operators' hours, reconciliation and backfill endpoints. Mounted after
// `authenticate()` (common/auth.ts), which sets the caller; the dashboard's assets are served apart by
// `dashboardStatic()` because the page itself needs no key.
//
// Freshness: nothing provisional is cached, so the speed layer's counts are as fresh as the store.
// Only facts that never change are cached (an ad's owner) or that may lag by a second (an
// advertiser's ad id list, which only grows).
//
// Speed layer down: the request still answers 200 from the batch layer; buckets that needed the speed
// layer carry `"unavailable": true` (their `clicks` hold only the batch part) and the body says so
// in `"unavailable": {"layer": "speed", "reason": ..., "requestId": ...}` — the store's own error
// (hosts, broker replies) goes to the log under that request id, never to the client. Clients that
// only look at `final` still see those buckets as not final.
//
// An advertiser's series and top ads are read keyed by the advertiser in every store, never by a list
// of its ad ids, so an advertiser with 100,000 ads costs no 100,000-literal query.
//
// Every query string and body is validated by the schemas of query.ts; `servingRoutes` hands the
// same schemas to the OpenAPI document.
import express, { type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import { Histogram } from 'prom-client';
import { callerOf, canSeeAd, requireAdmin, type Caller } from '../common/auth.js';
import {
  apiErrorHandler,
  BadRequest,
  logRequest,
  requestIdOf,
  sendApiError,
  validate,
} from '../common/http-errors.js';
import { json, jsonBody, keyedErrors, type ApiRoute } from '../common/openapi.js';
import { registry } from '../common/metrics.js';
import { config } from '../common/config.js';
import type { SpeedStore } from '../common/speed-store.js';
import { GRANULARITY_MS, HOUR_MS, hourOf, isoSeconds, type Granularity } from '../common/time.js';
import { BatchStore, type FinalizedHour } from './batch-store.js';
import { FinalizedAdTotals, topCandidates } from './ad-totals.js';
import { finalizationOf, mergeClicks, topAds, type MergedPoint, type MergedSeries } from './merge.js';
import {
  adPathParams,
  advertiserClicksQuery,
  backfillBody,
  checkRange,
  clicksQuery,
  hoursQuery,
  parseDateParam,
  parseId,
  parseRange,
  parseTime,
  parseTop,
  QUERY_CODES,
  reconciliationQuery,
  type TimeRange,
} from './query.js';
import { speedPart, type SpeedPart, type SpeedScope } from './speed-sums.js';

/** Starts the batch layer's backfill of [from, to) (the API process wires it to Temporal). */
export type StartBackfill = (range: { from: number; to: number }) => Promise<{ workflowId: string }>;

export interface ServingDeps {
  pool: pg.Pool;
  speedStore: SpeedStore;
  /** Used by POST /v1/admin/backfills. */
  startBackfill: StartBackfill;
  /** Raw Parquet retention (default BATCH_RAW_RETENTION_DAYS): no backfill before it (409). */
  rawRetentionDays?: number;
  /** The batch layer's S3 prefix (default BATCH_S3_PREFIX): whose recorded raw cutoff applies. */
  rawPrefix?: string;
  /** Longest wait for the speed layer before answering without it. */
  speedTimeoutMs?: number;
  now?: () => number;
}

const queryLatency = new Histogram({
  name: 'serving_query_duration_seconds',
  help: 'Time to answer a metrics query, by endpoint',
  labelNames: ['endpoint'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
  registers: [registry],
});

/** What the handlers share: the stores, the caches of facts that do not change, the clock. */
class ServingContext {
  readonly batch: BatchStore;
  readonly finalizedAdTotals: FinalizedAdTotals;
  readonly now: () => number;
  private readonly owners = new LRUCache<string, string>({ max: 100_000 }); // an ad never changes owner

  constructor(readonly deps: ServingDeps) {
    this.batch = new BatchStore(deps.pool);
    this.finalizedAdTotals = new FinalizedAdTotals(this.batch);
    this.now = deps.now ?? Date.now;
  }

  speed(scope: SpeedScope, range: TimeRange, finalized: ReadonlySet<number>): Promise<SpeedPart> {
    return speedPart(this.deps.speedStore, scope, range, finalized, this.deps.speedTimeoutMs ?? 2000);
  }

  async adOwner(adId: string): Promise<string | undefined> {
    const hit = this.owners.get(adId);
    if (hit !== undefined) return hit;
    const owner = await this.batch.adOwner(adId);
    if (owner !== undefined) this.owners.set(adId, owner);
    return owner;
  }
}

type Handler = (req: Request, res: Response) => Promise<void>;

const point = z.object({
  start: z.string(),
  clicks: z.number().int(),
  final: z.boolean(),
  revision: z.number().int().optional().describe('final points: the finalization they come from'),
  finalizedAt: z.string().optional(),
  unavailable: z.literal(true).optional(),
});
const series = {
  granularity: z.enum(['minute', 'hour', 'day']),
  from: z.string(),
  to: z.string(),
  total: z.number().int(),
  points: z.array(point),
  unavailable: z
    .object({ layer: z.literal('speed'), reason: z.string(), requestId: z.string() })
    .optional()
    .describe('the speed layer did not answer: provisional counts are missing'),
};
const adminOnly = { '403': 'not the admin key' };

/** Query of the adjustments lists. */
const adjustmentsQuery = hoursQuery.extend({
  advertiserId: z
    .string()
    .regex(/^\d{1,18}$/, 'advertiserId must be a positive integer')
    .optional()
    .describe('with the admin key: only this advertiser (its own row and its ads)'),
});
const adjustment = z.object({
  hour: z.string(),
  revision: z.number().int().describe('the revision that made the change (2 or more)'),
  finalizedAt: z.string(),
  adId: z.string().optional().describe('an ad row; absent on an advertiser row'),
  advertiserId: z.string().nullable(),
  clicksBefore: z.number().int().describe('final clicks in the revision before'),
  clicksAfter: z.number().int(),
  delta: z.number().int().describe('clicksAfter − clicksBefore'),
});
const adjustmentsBody = z.object({
  from: z.string(),
  to: z.string(),
  adjustments: z.array(adjustment),
  truncated: z.boolean().describe('more than 10,000 rows: narrow the range'),
});

/** The routes of this router with their schemas (the OpenAPI document is made from them). */
export const servingRoutes: ApiRoute[] = [
  {
    method: 'get',
    path: '/',
    summary: 'The dashboard (enter an advertiser key in the page)',
    responses: { '200': { description: 'HTML', content: { 'text/html': { schema: z.string() } } } },
  },
  {
    method: 'get',
    path: '/v1/ads/{adId}/clicks',
    summary: "One ad's clicks per minute, hour or day (owner or admin)",
    security: [{ bearer: [] }],
    request: { params: adPathParams, query: clicksQuery },
    responses: {
      '200': json('the merged series', z.object({ adId: z.string(), ...series })),
      ...keyedErrors({ '404': 'no such ad (or not yours)' }),
    },
  },
  {
    method: 'get',
    path: '/v1/advertisers/me/clicks',
    summary: "The advertiser's clicks summed over its ads, and its top ads",
    security: [{ bearer: [] }],
    request: { query: advertiserClicksQuery },
    responses: {
      '200': json(
        'the merged series and the top ads',
        z.object({
          advertiserId: z.string(),
          ...series,
          ads: z.array(z.object({ adId: z.string(), clicks: z.number().int(), name: z.string().nullable() })),
        }),
      ),
      ...keyedErrors(),
    },
  },
  {
    method: 'get',
    path: '/v1/admin/hours',
    summary: "Each hour's state and counts per layer (admin)",
    security: [{ bearer: [] }],
    request: { query: hoursQuery },
    responses: {
      '200': json(
        'the hours',
        z.object({
          from: z.string(),
          to: z.string(),
          hours: z
            .array(z.record(z.string(), z.unknown()))
            .describe(
              'per hour: `state` open | waiting (for completeness: `waitingFor`, `waitingSince`; not an error) | ' +
                'failed (`failure.reason`: an error, or a refusal past the raw cutoff) | finalized; revisions; counts per layer',
            ),
        }),
      ),
      ...keyedErrors(adminOnly),
    },
  },
  {
    method: 'get',
    path: '/v1/admin/reconciliation',
    summary: 'The daily reconciliation report (admin)',
    security: [{ bearer: [] }],
    request: { query: reconciliationQuery },
    responses: {
      '200': json(
        'the report',
        z.object({
          date: z.string(),
          createdAt: z.string(),
          speedTotal: z.number(),
          batchTotal: z.number(),
          report: z.unknown(),
        }),
      ),
      ...keyedErrors({ ...adminOnly, '404': 'no report for that day yet' }),
    },
  },
  {
    method: 'post',
    path: '/v1/admin/backfills',
    summary: 'Start the backfill workflow of an hour-aligned window (admin)',
    security: [{ bearer: [] }],
    request: { body: jsonBody(backfillBody) },
    responses: {
      '202': json('the workflow', z.object({ workflowId: z.string(), from: z.string(), to: z.string() })),
      ...keyedErrors({
        ...adminOnly,
        '409':
          'past_raw_cutoff: the range starts before the raw cutoff (named in the message); its finals cannot be recounted',
        '413': 'body too large',
      }),
    },
  },
  {
    method: 'get',
    path: '/v1/admin/adjustments',
    summary:
      'Final counts changed after their first finalization: per revision, per ad and per advertiser (admin)',
    security: [{ bearer: [] }],
    request: { query: adjustmentsQuery },
    responses: {
      '200': json('the adjustments, oldest hour first', adjustmentsBody),
      ...keyedErrors(adminOnly),
    },
  },
  {
    method: 'get',
    path: '/v1/advertisers/me/adjustments',
    summary:
      "The advertiser's own adjustments: its ads' and its total final counts changed by later revisions",
    security: [{ bearer: [] }],
    request: { query: adjustmentsQuery },
    responses: { '200': json('the adjustments, oldest hour first', adjustmentsBody), ...keyedErrors() },
  },
];

export function createServingRouter(deps: ServingDeps): Router {
  const ctx = new ServingContext(deps);
  const router = express.Router();
  router.get('/v1/ads/:adId/clicks', timed('ad', adClicks(ctx)));
  router.get('/v1/advertisers/me/clicks', timed('advertiser', advertiserClicks(ctx)));
  router.get('/v1/admin/hours', requireAdmin, adminHours(ctx));
  router.get('/v1/admin/reconciliation', requireAdmin, reconciliation(ctx));
  router.post('/v1/admin/backfills', requireAdmin, backfill(ctx));
  router.get('/v1/admin/adjustments', requireAdmin, adjustments(ctx, 'admin'));
  router.get('/v1/advertisers/me/adjustments', adjustments(ctx, 'advertiser'));
  router.use(apiErrorHandler('serving'));
  return router;
}

function timed(endpoint: string, handler: Handler): Handler {
  return async (req, res) => {
    const t0 = performance.now();
    await handler(req, res);
    queryLatency.observe({ endpoint }, (performance.now() - t0) / 1000);
  };
}

/** The per-ad table of each tier: where retention records what it dropped. */
const TIER_TABLE: Record<Granularity, string> = {
  minute: 'click_counts_minute',
  hour: 'click_counts_hour',
  day: 'click_counts_day',
};

/** A range reaching into counts the tier's retention dropped gets a 400 naming the tier. */
async function checkRetention(ctx: ServingContext, range: TimeRange): Promise<void> {
  const until = await ctx.batch.expiredThrough(TIER_TABLE[range.granularity], range.from, range.to);
  if (until === undefined) return;
  const coarser =
    range.granularity === 'minute' ? 'hour or day' : range.granularity === 'hour' ? 'day' : undefined;
  throw new BadRequest(
    'outside_retention',
    `the ${range.granularity} tier no longer holds counts before ${isoSeconds(until)} (retention)` +
      (coarser ? `: ask ${coarser} granularity, or start the range there` : ': start the range there'),
  );
}

/** GET /v1/ads/:adId/clicks — one ad's merged series. */
function adClicks(ctx: ServingContext): Handler {
  return async (req, res) => {
    const { adId } = validate(adPathParams, req.params, QUERY_CODES);
    const range = parseRange(validate(clicksQuery, req.query, QUERY_CODES), ctx.now());
    await checkRetention(ctx, range);
    const owner = await ctx.adOwner(adId);
    if (owner === undefined || !canSeeAd(callerOf(res), owner))
      return sendApiError(res, 404, 'not_found', 'no such ad');
    const hours = await ctx.batch.finalizedHours(range.from, range.to);
    const finalized = new Set(hours.map((h) => h.hour));
    const [batchCounts, speed] = await Promise.all([
      range.granularity === 'minute'
        ? ctx.batch.adMinutes(adId, range.from, range.to)
        : range.granularity === 'hour'
          ? ctx.batch.adHours(adId, range.from, range.to)
          : ctx.batch.adDays(adId, range.from, range.to, finalized),
      ctx.speed({ adIds: [adId] }, range, finalized),
    ]);
    const merged = mergeClicks(range, finalized, batchCounts, speed.totals && speed.totals.buckets);
    res.json({ adId, ...seriesBody(req, res, range, merged, speed, hours) });
  };
}

/** GET /v1/advertisers/me/clicks — the advertiser's series summed over its ads, and its top ads. */
function advertiserClicks(ctx: ServingContext): Handler {
  return async (req, res) => {
    const q = validate(advertiserClicksQuery, req.query, QUERY_CODES);
    const advertiserId = advertiserOf(callerOf(res), q.advertiserId);
    const range = parseRange(q, ctx.now());
    await checkRetention(ctx, range);
    const top = parseTop(q.top);
    const hours = await ctx.batch.finalizedHours(range.from, range.to);
    const finalized = new Set(hours.map((h) => h.hour));
    const scope = { advertiserId };
    const [batchSeries, batchTotals, speed] = await Promise.all([
      range.granularity === 'minute'
        ? ctx.batch.advertiserMinutes(advertiserId, range.from, range.to)
        : range.granularity === 'hour'
          ? ctx.batch.advertiserHours(advertiserId, range.from, range.to)
          : ctx.batch.advertiserDays(advertiserId, range.from, range.to, finalized),
      ctx.finalizedAdTotals.totals(advertiserId, scope, range.from, range.to, hours),
      ctx.speed(scope, range, finalized),
    ]);
    const merged = mergeClicks(range, finalized, batchSeries, speed.totals && speed.totals.buckets);
    const speedAds = speed.totals?.ads ?? [];
    const ranked = topAds(topCandidates(batchTotals, speedAds, top), speedAds, top);
    const names = await ctx.batch.adNames(ranked.map((a) => a.adId));
    const ads = ranked.map((a) => ({ ...a, name: names.get(a.adId) ?? null }));
    res.json({ advertiserId, ...seriesBody(req, res, range, merged, speed, hours), ads });
  };
}

/** GET /v1/admin/hours — each hour's state and its counts per layer. */
function adminHours(ctx: ServingContext): Handler {
  return async (req, res) => {
    const q = validate(hoursQuery, req.query, QUERY_CODES);
    const range = checkRange(
      parseTime(q.from, 'from'),
      parseTime(q.to, 'to'),
      'hour',
      ctx.now(),
      92 * 24 * HOUR_MS,
    );
    const [hours, revisions, failures] = await Promise.all([
      ctx.batch.finalizedHours(range.from, range.to),
      ctx.batch.hourRevisions(range.from, range.to),
      ctx.batch.hourFailures(range.from, range.to),
    ]);
    const byHour = new Map(hours.map((h) => [h.hour, h]));
    const speed = await speedHourTotals(ctx.deps.speedStore, range);
    if (speed.detail) logRequest('serving', req, res, `speed layer unavailable: ${speed.detail}`);
    const list = [];
    for (let h = range.from; h < range.to; h += HOUR_MS) {
      const f = byHour.get(h);
      const failure = failures.get(h);
      // Since its last finalization (if any) the hour's compaction failed (an error, a refusal), or
      // waits / gave up waiting for completeness: waiting is not failing. The sweep retries both.
      const unsettled = failure !== undefined && (!f || failure.failedAt > f.finalizedAt);
      const waiting = unsettled && failure.kind === 'waiting';
      const failed = unsettled && failure.kind === 'failed';
      list.push({
        hour: isoSeconds(h),
        state: waiting ? 'waiting' : failed ? 'failed' : f ? 'finalized' : 'open',
        ...(waiting && {
          waitingFor: failure.reason,
          waitingSince: new Date(failure.failedAt).toISOString(),
          workflowId: failure.workflowId,
        }),
        ...(failed && {
          failure: {
            reason: failure.reason,
            failedAt: new Date(failure.failedAt).toISOString(),
            workflowId: failure.workflowId,
          },
        }),
        ...(f && {
          revision: f.revision,
          runId: f.runId,
          workflowId: f.workflowId,
          finalizedAt: new Date(f.finalizedAt).toISOString(),
          revisions: (revisions.get(h) ?? []).map((r) => ({
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
          speed: speed.byHour ? (speed.byHour.get(h) ?? 0) : null,
        },
      });
    }
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
function reconciliation(ctx: ServingContext): Handler {
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
function backfill(ctx: ServingContext): Handler {
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
function adjustments(ctx: ServingContext, who: 'admin' | 'advertiser'): Handler {
  return async (req, res) => {
    const q = validate(adjustmentsQuery, req.query, {
      ...QUERY_CODES,
      advertiserId: 'invalid_advertiser_id',
    });
    const range = checkRange(
      parseTime(q.from, 'from'),
      parseTime(q.to, 'to'),
      'hour',
      ctx.now(),
      92 * 24 * HOUR_MS,
    );
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

/** Serves the dashboard (index.html, app.js, style.css) at `/`; needs no key. */
export function dashboardStatic(): express.Handler {
  return express.static(new URL('./public/', import.meta.url).pathname, { index: 'index.html', maxAge: 0 });
}

/** An advertiser asks about itself; the admin names the advertiser with `?advertiserId=`. */
function advertiserOf(caller: Caller, requested: unknown): string {
  if (caller.kind === 'advertiser') return caller.advertiserId;
  if (requested === undefined)
    throw new BadRequest('missing_advertiser_id', 'with the admin key, name the advertiser: ?advertiserId=');
  return parseId(requested, 'advertiser_id');
}

function seriesBody(
  req: Request,
  res: Response,
  range: TimeRange,
  merged: MergedSeries,
  speed: SpeedPart,
  hours: readonly FinalizedHour[],
) {
  if (speed.totals === null) logRequest('serving', req, res, `speed layer unavailable: ${speed.detail}`);
  const finalizations = new Map(hours.map((h) => [h.hour, h]));
  const step = GRANULARITY_MS[range.granularity];
  return {
    granularity: range.granularity,
    from: isoSeconds(range.from),
    to: isoSeconds(range.to),
    total: merged.total,
    points: merged.points.map((p: MergedPoint) => {
      const f = p.final ? finalizationOf(p.start, step, finalizations) : undefined;
      return {
        start: isoSeconds(p.start),
        clicks: p.clicks,
        final: p.final,
        ...(f && { revision: f.revision, finalizedAt: isoSeconds(f.finalizedAt) }),
        ...(p.unavailable && { unavailable: true }),
      };
    }),
    ...(speed.totals === null && {
      unavailable: { layer: 'speed', reason: speed.reason, requestId: requestIdOf(res) },
    }),
  };
}
