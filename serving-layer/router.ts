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
// layer carry `"unavailable": true` (their `clicks` hold only the batch part) and the body says why
// in `"unavailable": {"layer": "speed", "reason": ...}`. Clients that only look at `final` still see
// those buckets as not final.
import type { Client } from '@temporalio/client';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type pg from 'pg';
import { Histogram } from 'prom-client';
import { callerOf, canSeeAd, requireAdmin, sendApiError, type Caller } from '../common/auth.js';
import { registry } from '../common/metrics.js';
import type { SpeedStore } from '../common/speed-store.js';
import { createTemporalClient } from '../common/temporal.js';
import { HOUR_MS, MINUTE_MS, hourOf, isoSeconds } from '../common/time.js';
import { startBackfill } from '../batch-layer/operations.js';
import { BatchStore } from './batch-store.js';
import { FinalizedAdTotals } from './ad-totals.js';
import { mergeClicks, speedSpans, topAds, type Count, type MergedPoint, type MergedSeries } from './merge.js';
import { speedTotals, type SpeedTotals } from './speed-sums.js';
import {
  BadRequest,
  checkRange,
  parseDate,
  parseId,
  parseRange,
  parseTime,
  parseTop,
  type TimeRange,
} from './query.js';

export interface ServingDeps {
  pool: pg.Pool;
  speedStore: SpeedStore;
  /** Used by POST /v1/admin/backfills; connected lazily when absent. */
  temporalClient?: Client;
  /** Replaces how a backfill is started (tests, or a caller with its own Temporal wiring). */
  startBackfill?: (range: { from: number; to: number }) => Promise<{ workflowId: string }>;
  /** Longest wait for the speed layer before answering without it. */
  speedTimeoutMs?: number;
  now?: () => number;
}

/** Optional capability of a speed store: provisional totals per hour over all ads (GET /v1/admin/hours). */
export interface SpeedHourTotals {
  hourTotals(from: number, to: number): Promise<Count[]>;
}
const hasHourTotals = (s: SpeedStore): s is SpeedStore & SpeedHourTotals =>
  typeof (s as Partial<SpeedHourTotals>).hourTotals === 'function';

const queryLatency = new Histogram({
  name: 'serving_query_duration_seconds',
  help: 'Time to answer a metrics query, by endpoint',
  labelNames: ['endpoint'],
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5],
  registers: [registry],
});

type SpeedResult = { totals: SpeedTotals } | { totals: null; reason: string };

export function createServingRouter(deps: ServingDeps): Router {
  const batch = new BatchStore(deps.pool);
  const finalizedAdTotals = new FinalizedAdTotals(batch);
  const now = deps.now ?? Date.now;
  const speedTimeoutMs = deps.speedTimeoutMs ?? 2000;
  const owners = new BoundedCache<string, string>(100_000, Infinity); // an ad never changes owner
  const adIdLists = new BoundedCache<string, string[]>(10_000, 1000);
  const launchBackfill = deps.startBackfill ?? temporalBackfillStarter(deps.temporalClient);

  /**
   * Provisional sums of `adIds` over the hours of `range` that are not finalized (none: no call), per
   * minute for minute series and per hour otherwise. A failing or slow store yields the reason instead.
   */
  async function speedPart(adIds: readonly string[], range: TimeRange, finalized: ReadonlySet<number>) {
    const spans = speedSpans(range, finalized);
    if (spans.length === 0 || adIds.length === 0)
      return { totals: { buckets: [], ads: [] } } satisfies SpeedResult;
    const bucketMs = range.granularity === 'minute' ? MINUTE_MS : HOUR_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${speedTimeoutMs} ms`)), speedTimeoutMs);
    });
    try {
      const totals = await Promise.race([speedTotals(deps.speedStore, adIds, spans, bucketMs), timeout]);
      return { totals } satisfies SpeedResult;
    } catch (e) {
      return {
        totals: null,
        reason: `speed layer unavailable: ${(e as Error).message}`,
      } satisfies SpeedResult;
    } finally {
      clearTimeout(timer);
    }
  }

  async function adOwner(adId: string): Promise<string | undefined> {
    const hit = owners.get(adId);
    if (hit !== undefined) return hit;
    const owner = await batch.adOwner(adId);
    if (owner !== undefined) owners.set(adId, owner);
    return owner;
  }

  async function advertiserAdIds(advertiserId: string): Promise<string[]> {
    const hit = adIdLists.get(advertiserId);
    if (hit) return hit;
    const ids = await batch.advertiserAdIds(advertiserId);
    adIdLists.set(advertiserId, ids);
    return ids;
  }

  const router = express.Router();

  router.get('/v1/ads/:adId/clicks', async (req, res) => {
    const t0 = performance.now();
    const adId = parseId(req.params.adId, 'ad_id');
    const range = parseRange(req.query, now());
    const owner = await adOwner(adId);
    if (owner === undefined || !canSeeAd(callerOf(res), owner)) return notFoundAd(res);
    const finalized = await batch.finalizedHourSet(range.from, range.to);
    const [batchCounts, speed] = await Promise.all([
      range.granularity === 'minute'
        ? batch.adMinutes(adId, range.from, range.to)
        : batch.adHours(adId, range.from, range.to),
      speedPart([adId], range, finalized),
    ]);
    const merged = mergeClicks(range, finalized, batchCounts, speed.totals && speed.totals.buckets);
    res.json({ adId, ...seriesBody(range, merged, speed) });
    queryLatency.observe({ endpoint: 'ad' }, (performance.now() - t0) / 1000);
  });

  router.get('/v1/advertisers/me/clicks', async (req, res) => {
    const t0 = performance.now();
    const advertiserId = advertiserOf(callerOf(res), req.query.advertiserId);
    const range = parseRange(req.query, now());
    const top = parseTop(req.query.top);
    const [adIds, hours] = await Promise.all([
      advertiserAdIds(advertiserId),
      batch.finalizedHours(range.from, range.to),
    ]);
    const finalized = new Set(hours.map((h) => h.hour));
    const [batchSeries, batchTotals, speed] = await Promise.all([
      range.granularity === 'minute'
        ? batch.advertiserMinutes(advertiserId, range.from, range.to)
        : batch.advertiserHours(advertiserId, range.from, range.to),
      finalizedAdTotals.totals(advertiserId, adIds, range.from, range.to, hours),
      speedPart(adIds, range, finalized),
    ]);
    const merged = mergeClicks(range, finalized, batchSeries, speed.totals && speed.totals.buckets);
    const ranked = topAds(batchTotals, speed.totals?.ads ?? [], top);
    const names = await batch.adNames(ranked.map((a) => a.adId));
    const ads = ranked.map((a) => ({ ...a, name: names.get(a.adId) ?? null }));
    res.json({ advertiserId, ...seriesBody(range, merged, speed), ads });
    queryLatency.observe({ endpoint: 'advertiser' }, (performance.now() - t0) / 1000);
  });

  router.get('/v1/admin/hours', requireAdmin, async (req, res) => {
    const t = now();
    const range = checkRange(
      parseTime(req.query.from, 'from'),
      parseTime(req.query.to, 'to'),
      'hour',
      t,
      92 * 24 * HOUR_MS,
    );
    const hours = await batch.finalizedHours(range.from, range.to);
    const byHour = new Map(hours.map((h) => [h.hour, h]));
    let speedByHour: Map<number, number> | undefined;
    let speedReason: string | undefined;
    if (hasHourTotals(deps.speedStore)) {
      try {
        const totals = await deps.speedStore.hourTotals(range.from, range.to);
        speedByHour = new Map(totals.map((c) => [c.start, c.clicks]));
      } catch (e) {
        speedReason = `speed layer unavailable: ${(e as Error).message}`;
      }
    }
    const list = [];
    for (let h = range.from; h < range.to; h += HOUR_MS) {
      const f = byHour.get(h);
      list.push({
        hour: isoSeconds(h),
        state: f ? 'finalized' : 'open',
        ...(f && {
          runId: f.runId,
          workflowId: f.workflowId,
          finalizedAt: new Date(f.finalizedAt).toISOString(),
        }),
        counts: {
          batch: f ? f.validClicks : null,
          batchEvents: f ? f.events : null,
          speed: speedByHour ? (speedByHour.get(h) ?? 0) : null,
        },
      });
    }
    res.json({
      from: isoSeconds(range.from),
      to: isoSeconds(range.to),
      hours: list,
      ...(speedReason && { unavailable: { layer: 'speed', reason: speedReason } }),
    });
  });

  router.get('/v1/admin/reconciliation', requireAdmin, async (req, res) => {
    const date = parseDate(req.query.date);
    const report = await batch.reconciliation(date);
    if (!report) return sendApiError(res, 404, 'not_found', `no reconciliation report for ${date} yet`);
    res.json({
      date: report.day,
      createdAt: new Date(report.createdAt).toISOString(),
      speedTotal: report.speedTotal,
      batchTotal: report.batchTotal,
      report: report.report,
    });
  });

  router.post('/v1/admin/backfills', requireAdmin, async (req, res) => {
    const body: unknown = req.body;
    const fields = (typeof body === 'object' && body !== null ? body : {}) as Record<string, unknown>;
    const asText = (v: unknown): unknown => (typeof v === 'number' ? String(v) : v);
    const from = parseTime(asText(fields.from), 'from');
    const to = parseTime(asText(fields.to), 'to');
    if (from === undefined || to === undefined)
      throw new BadRequest('invalid_range', 'send {"from", "to"}: hour-aligned ISO-8601 UTC times');
    const range = checkRange(from, to, 'hour', now(), 92 * 24 * HOUR_MS, '92 days');
    if (range.to > hourOf(now()) + HOUR_MS)
      throw new BadRequest('invalid_range', 'a backfill cannot reach past the current hour');
    const { workflowId } = await launchBackfill({ from: range.from, to: range.to });
    res.status(202).json({ workflowId, from: isoSeconds(range.from), to: isoSeconds(range.to) });
  });

  // Express 5 forwards rejected handlers here: 400 for bad input, 500 (with the reason) otherwise.
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(err);
    if (err instanceof BadRequest) return sendApiError(res, 400, err.code, err.message);
    sendApiError(res, 500, 'internal', `the query failed: ${(err as Error).message ?? String(err)}`);
  });
  return router;
}

/** Serves the dashboard (index.html, app.js, style.css) at `/`; needs no key. */
export function dashboardStatic(): express.Handler {
  return express.static(new URL('./public/', import.meta.url).pathname, { index: 'index.html', maxAge: 0 });
}

function notFoundAd(res: Response): void {
  sendApiError(res, 404, 'not_found', 'no such ad');
}

/** An advertiser asks about itself; the admin names the advertiser with `?advertiserId=`. */
function advertiserOf(caller: Caller, requested: unknown): string {
  if (caller.kind === 'advertiser') return caller.advertiserId;
  if (requested === undefined)
    throw new BadRequest('missing_advertiser_id', 'with the admin key, name the advertiser: ?advertiserId=');
  return parseId(requested, 'advertiser_id');
}

function seriesBody(range: TimeRange, merged: MergedSeries, speed: SpeedResult) {
  return {
    granularity: range.granularity,
    from: isoSeconds(range.from),
    to: isoSeconds(range.to),
    total: merged.total,
    points: merged.points.map((p: MergedPoint) => ({
      start: isoSeconds(p.start),
      clicks: p.clicks,
      final: p.final,
      ...(p.unavailable && { unavailable: true }),
    })),
    ...(speed.totals === null && { unavailable: { layer: 'speed', reason: speed.reason } }),
  };
}

/** Starts the batch layer's backfill workflow (id derived from the window: a repeat is not a second run). */
function temporalBackfillStarter(
  given: Client | undefined,
): (range: { from: number; to: number }) => Promise<{ workflowId: string }> {
  let client: Promise<Client> | undefined = given && Promise.resolve(given);
  return async ({ from, to }) => {
    client ??= createTemporalClient();
    const { workflowId } = await startBackfill(await client, { from: isoSeconds(from), to: isoSeconds(to) });
    return { workflowId };
  };
}

/** A Map with a size bound (oldest entry evicted first) and a time to live per entry. */
class BoundedCache<K, V> {
  private readonly entries = new Map<K, { value: V; until: number }>();
  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
  ) {}
  get(key: K): V | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    if (e.until < Date.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return e.value;
  }
  set(key: K, value: V): void {
    this.entries.delete(key);
    if (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value as K);
    this.entries.set(key, { value, until: Date.now() + this.ttlMs });
  }
}
