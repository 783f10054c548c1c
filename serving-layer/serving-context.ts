// What the serving API's handlers share: their dependencies, the stores and the caches of facts that
// do not change, and the checks every series request makes (retention, whose advertiser).
import type { Request, Response } from 'express';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import type { Caller } from '../common/auth.js';
import { BadRequest } from '../common/http-errors.js';
import type { SpeedStore } from '../common/speed-store.js';
import { isoSeconds, type Granularity } from '../common/time.js';
import { FinalizedAdTotals } from './ad-totals.js';
import { BatchStore } from './batch-store.js';
import { parseId, type TimeRange } from './query.js';
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

/** What the handlers share: the stores, the caches of facts that do not change, the clock. */
export class ServingContext {
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

export type Handler = (req: Request, res: Response) => Promise<void>;

/** The per-ad table of each tier: where retention records what it dropped. */
const TIER_TABLE: Record<Granularity, string> = {
  minute: 'click_counts_minute',
  hour: 'click_counts_hour',
  day: 'click_counts_day',
};

/** A range reaching into counts the tier's retention dropped gets a 400 naming the tier. */
export async function checkRetention(ctx: ServingContext, range: TimeRange): Promise<void> {
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

/** An advertiser asks about itself; the admin names the advertiser with `?advertiserId=`. */
export function advertiserOf(caller: Caller, requested: unknown): string {
  if (caller.kind === 'advertiser') return caller.advertiserId;
  if (requested === undefined)
    throw new BadRequest('missing_advertiser_id', 'with the admin key, name the advertiser: ?advertiserId=');
  return parseId(requested, 'advertiser_id');
}
