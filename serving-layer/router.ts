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
import { Histogram } from 'prom-client';
import { callerOf, canSeeAd, requireAdmin } from '../common/auth.js';
import { apiErrorHandler, logRequest, requestIdOf, sendApiError, validate } from '../common/http-errors.js';
import { registry } from '../common/metrics.js';
import { GRANULARITY_MS, isoSeconds, type Granularity } from '../common/time.js';
import type { FinalizedHour } from './batch-store.js';
import { topCandidates } from './ad-totals.js';
import {
  finalizationOf,
  mergeClicks,
  topAds,
  type Count,
  type MergedPoint,
  type MergedSeries,
} from './merge.js';
import {
  adPathParams,
  advertiserClicksQuery,
  clicksQuery,
  parseRange,
  parseTop,
  QUERY_CODES,
  type TimeRange,
} from './query.js';
import type { SpeedPart } from './speed-sums.js';
import { adjustments, adminHours, backfill, reconciliation } from './admin-handlers.js';
import {
  advertiserOf,
  checkRetention,
  ServingContext,
  type Handler,
  type ServingDeps,
} from './serving-context.js';

export type { ServingDeps, StartBackfill } from './serving-context.js';
export { servingRoutes } from './serving-routes.js';

const queryLatency = new Histogram({
  name: 'serving_query_duration_seconds',
  help: 'Time to answer a metrics query, by endpoint',
  labelNames: ['endpoint'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
  registers: [registry],
});

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
      batchSeries(range, finalized, {
        minute: () => ctx.batch.adMinutes(adId, range.from, range.to),
        hour: () => ctx.batch.adHours(adId, range.from, range.to),
        day: () => ctx.batch.adDays(adId, range.from, range.to, finalized),
      }),
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
    const [batchCounts, batchTotals, speed] = await Promise.all([
      batchSeries(range, finalized, {
        minute: () => ctx.batch.advertiserMinutes(advertiserId, range.from, range.to),
        hour: () => ctx.batch.advertiserHours(advertiserId, range.from, range.to),
        day: () => ctx.batch.advertiserDays(advertiserId, range.from, range.to, finalized),
      }),
      ctx.finalizedAdTotals.totals(advertiserId, scope, range.from, range.to, hours),
      ctx.speed(scope, range, finalized),
    ]);
    const merged = mergeClicks(range, finalized, batchCounts, speed.totals && speed.totals.buckets);
    const speedAds = speed.totals?.ads ?? [];
    const ranked = topAds(topCandidates(batchTotals, speedAds, top), speedAds, top);
    const names = await ctx.batch.adNames(ranked.map((a) => a.adId));
    const ads = ranked.map((a) => ({ ...a, name: names.get(a.adId) ?? null }));
    res.json({ advertiserId, ...seriesBody(req, res, range, merged, speed, hours), ads });
  };
}

/**
 * The batch layer's counts of a series at the range's granularity, read only when an hour of the
 * range is finalized: the merge takes batch counts for finalized hours alone (merge.ts), so a range
 * of open hours — a dashboard polling the last minutes — needs no query for them.
 */
function batchSeries(
  range: TimeRange,
  finalized: ReadonlySet<number>,
  read: Record<Granularity, () => Promise<Count[]>>,
): Promise<Count[]> {
  return finalized.size === 0 ? Promise.resolve([]) : read[range.granularity]();
}

/** Serves the dashboard (index.html, app.js, style.css) at `/`; needs no key. */
export function dashboardStatic(): express.Handler {
  return express.static(new URL('./public/', import.meta.url).pathname, { index: 'index.html', maxAge: 0 });
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
