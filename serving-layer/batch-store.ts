// Reads of the batch layer's authoritative counts in PostgreSQL (migrations/003_batch.sql) and of the
// catalogue rows the serving layer needs (who owns an ad, an advertiser's ad ids). Every query walks
// a primary key: per-ad series by (ad_id, minute|hour|day), per-advertiser series from the rollup
// tables by (advertiser_id, minute|hour|day), so "1,000 ads over 7 days" is 168 rows, not 168,000,
// and 90 days by day is 90 rows. The tables are partitioned by time (migrations/007_time_partitions.sql).
import type pg from 'pg';
import { DAY_MS, HOUR_MS } from '../common/time.js';
import type { Count } from './merge.js';
import { HourRecords } from './hour-records.js';
import { config } from '../common/config.js';
import { PinotBatchCounts, type AuthoritativeCounts } from './pinot-batch-counts.js';
import { finalizedSpans, isEmptyScope, type AdScope } from './finalized-range.js';

export type {
  Adjustment,
  FinalizedHour,
  HourFailure,
  HourRevision,
  StoredReconciliation,
} from './hour-records.js';

const ts = (ms: number): Date => new Date(ms);

export type { AdScope } from './finalized-range.js';
/** The `where` condition on `ad_id` for `scope`, its value bound as `$1`. */
const adCondition = (scope: AdScope): [string, unknown] =>
  'advertiserId' in scope
    ? ['ad_id in (select ad_id from ads where advertiser_id = $1)', scope.advertiserId]
    : ['ad_id = any($1::bigint[])', scope];
const toCounts = (rows: Array<{ start: number; clicks: string | number }>): Count[] =>
  rows.map((r) => ({ start: r.start, clicks: Number(r.clicks) }));
/** Epoch ms of a timestamptz column, computed by PostgreSQL (cheaper than parsing a Date per row). */
const epochMs = (column: string): string => `(extract(epoch from ${column}) * 1000)::float8`;

/** The store of the counts as configured: BATCH_STORE=pinot reads them from BATCH_PINOT_TABLE. */
export function configuredCounts(): AuthoritativeCounts | undefined {
  if (config.BATCH_STORE !== 'pinot') return undefined;
  return new PinotBatchCounts(
    config.BATCH_PINOT_TABLE,
    { brokerUrl: config.PINOT_BROKER_URL, controllerUrl: config.PINOT_CONTROLLER_URL },
    config.BATCH_PINOT_RETENTION_DAYS,
  );
}

/**
 * Hour records (hour-records.ts, which this extends) and the catalogue always come from PostgreSQL; the counts come
 * from PostgreSQL's count tables, or with `pinot` (default: BATCH_STORE) from the Pinot OFFLINE table.
 */
export class BatchStore extends HourRecords {
  constructor(
    pool: pg.Pool,
    /** null: PostgreSQL whatever BATCH_STORE says (tools comparing the two stores). */
    private readonly pinot: AuthoritativeCounts | null | undefined = configuredCounts(),
  ) {
    super(pool);
  }

  /** One ad's authoritative minute rows in [from, to). */
  async adMinutes(adId: string, from: number, to: number): Promise<Count[]> {
    if (this.pinot) return this.pinot.adMinutes(adId, from, to);
    const r = await this.pool.query<{ start: number; clicks: number }>(
      `select ${epochMs('minute')} as start, clicks from click_counts_minute
        where ad_id = $1 and minute >= $2 and minute < $3`,
      [adId, ts(from), ts(to)],
    );
    return toCounts(r.rows);
  }

  /** One ad's authoritative hour rollups in [from, to) (hour-aligned bounds). */
  async adHours(adId: string, from: number, to: number): Promise<Count[]> {
    if (this.pinot) return this.pinot.adHours(adId, from, to);
    const r = await this.pool.query<{ start: number; clicks: number }>(
      `select ${epochMs('hour')} as start, clicks from click_counts_hour
        where ad_id = $1 and hour >= $2 and hour < $3`,
      [adId, ts(from), ts(to)],
    );
    return toCounts(r.rows);
  }

  /** One advertiser's authoritative minute rollups (all its ads summed) in [from, to). */
  async advertiserMinutes(advertiserId: string, from: number, to: number): Promise<Count[]> {
    if (this.pinot) return this.pinot.advertiserMinutes(advertiserId, from, to);
    const r = await this.pool.query<{ start: number; clicks: number }>(
      `select ${epochMs('minute')} as start, clicks from advertiser_counts_minute
        where advertiser_id = $1 and minute >= $2 and minute < $3`,
      [advertiserId, ts(from), ts(to)],
    );
    return toCounts(r.rows);
  }

  /** One advertiser's authoritative hour rollups in [from, to) (hour-aligned bounds). */
  async advertiserHours(advertiserId: string, from: number, to: number): Promise<Count[]> {
    if (this.pinot) return this.pinot.advertiserHours(advertiserId, from, to);
    const r = await this.pool.query<{ start: number; clicks: string }>(
      `select ${epochMs('hour')} as start, clicks from advertiser_counts_hour
        where advertiser_id = $1 and hour >= $2 and hour < $3`,
      [advertiserId, ts(from), ts(to)],
    );
    return toCounts(r.rows);
  }

  /**
   * One ad's day series in [from, to) (day-aligned): the day rollup of every day whose 24 hours are
   * all finalized, the hour rollups of the other days' finalized hours (the merge sums them).
   */
  async adDays(adId: string, from: number, to: number, finalized: ReadonlySet<number>): Promise<Count[]> {
    if (this.pinot) return this.pinot.adDays(adId, from, to, finalized);
    return this.daySeries('click_counts_day', 'click_counts_hour', 'ad_id', adId, from, to, finalized);
  }

  /** One advertiser's day series in [from, to), as `adDays` from the per-advertiser rollups. */
  async advertiserDays(
    advertiserId: string,
    from: number,
    to: number,
    finalized: ReadonlySet<number>,
  ): Promise<Count[]> {
    if (this.pinot) return this.pinot.advertiserDays(advertiserId, from, to, finalized);
    return this.daySeries(
      'advertiser_counts_day',
      'advertiser_counts_hour',
      'advertiser_id',
      advertiserId,
      from,
      to,
      finalized,
    );
  }

  private async daySeries(
    dayTable: string,
    hourTable: string,
    key: string,
    id: string,
    from: number,
    to: number,
    finalized: ReadonlySet<number>,
  ): Promise<Count[]> {
    const whole: Date[] = [];
    const partialHours: Date[] = [];
    for (let d = from; d < to; d += DAY_MS) {
      const hours = Array.from({ length: 24 }, (_, i) => d + i * HOUR_MS);
      if (hours.every((h) => finalized.has(h))) whole.push(ts(d));
      else for (const h of hours) if (finalized.has(h)) partialHours.push(ts(h));
    }
    const r = await this.pool.query<{ start: number; clicks: string }>(
      `select ${epochMs('day')} as start, clicks from ${dayTable} where ${key} = $1 and day = any($2::timestamptz[])
       union all
       select ${epochMs('hour')}, clicks from ${hourTable} where ${key} = $1 and hour = any($3::timestamptz[])`,
      [id, whole, partialHours],
    );
    return toCounts(r.rows);
  }

  /**
   * The newest end of a partition of the tier's per-ad table that retention dropped inside
   * [from, to), or undefined: a range reaching into one asks for counts the tier no longer holds.
   */
  async expiredThrough(table: string, from: number, to: number): Promise<number | undefined> {
    // Pinot: its retention of the minute rows, on top of the tiers' policy recorded below.
    const retainedFrom = this.pinot?.retainedFrom(Date.now()) ?? -Infinity;
    const pinotUntil = from < retainedFrom ? Math.min(to, retainedFrom) : undefined;
    const r = await this.pool.query<{ until: Date | null }>(
      `select max(range_to) as until from expired_partitions
        where table_name = $1 and range_from < $3 and range_to > $2`,
      [table, ts(from), ts(to)],
    );
    const tierUntil = r.rows[0]?.until?.getTime();
    if (pinotUntil === undefined) return tierUntil;
    return tierUntil === undefined ? pinotUntil : Math.max(tierUntil, pinotUntil);
  }

  /**
   * Clicks per ad of `ads` over the finalized hours of [from, to): hour rollups for whole hours,
   * minute rows for the partial hours at the ends of a minute-aligned range.
   */
  async adTotalsOverFinalized(
    ads: AdScope,
    from: number,
    to: number,
    finalized: ReadonlySet<number>,
  ): Promise<Array<{ adId: string; clicks: number }>> {
    if (this.pinot) return this.pinot.adTotalsOverFinalized(ads, from, to, finalized);
    if (isEmptyScope(ads)) return [];
    const [adsWhere, adsValue] = adCondition(ads);
    const { wholeHours, edges } = finalizedSpans(from, to, finalized);
    const edge = (i: number): [Date | null, Date | null] => {
      const e = edges[i];
      return e ? [ts(e[0]), ts(e[1])] : [null, null];
    };
    const [e1from, e1to] = edge(0);
    const [e2from, e2to] = edge(1);
    const r = await this.pool.query<{ ad_id: string; clicks: string }>(
      `select ad_id, sum(clicks)::bigint as clicks from (
         select ad_id, clicks from click_counts_hour
          where ${adsWhere} and hour = any($2::timestamptz[])
         union all
         select ad_id, clicks from click_counts_minute
          where ${adsWhere}
            and ((minute >= $3 and minute < $4) or (minute >= $5 and minute < $6))
       ) c group by ad_id`,
      [adsValue, wholeHours.map(ts), e1from, e1to, e2from, e2to],
    );
    return r.rows.map((row) => ({ adId: row.ad_id, clicks: Number(row.clicks) }));
  }

  /** Per-ad clicks over `hours` (finalized hour starts) from the hour rollups, per day of those hours. */
  async adDayTotals(ads: AdScope, hours: readonly number[]): Promise<Map<number, Map<string, number>>> {
    if (this.pinot) return this.pinot.adDayTotals(ads, hours);
    const out = new Map<number, Map<string, number>>();
    if (isEmptyScope(ads) || hours.length === 0) return out;
    const [adsWhere, adsValue] = adCondition(ads);
    const r = await this.pool.query<{ ad_id: string; day: number; clicks: string }>(
      `select ad_id, ${epochMs("date_bin('1 day', hour, timestamptz '1970-01-01')")} as day,
              sum(clicks)::bigint as clicks
         from click_counts_hour
        where ${adsWhere} and hour = any($2::timestamptz[])
        group by 1, 2`,
      [adsValue, hours.map(ts)],
    );
    for (const h of hours) out.set(h - (h % DAY_MS), new Map());
    for (const row of r.rows) out.get(row.day)?.set(row.ad_id, Number(row.clicks));
    return out;
  }

  /** The advertiser owning `adId`, or undefined if there is no such ad. */
  async adOwner(adId: string): Promise<string | undefined> {
    const r = await this.pool.query<{ advertiser_id: string }>(
      'select advertiser_id from ads where ad_id = $1',
      [adId],
    );
    return r.rows[0]?.advertiser_id;
  }

  /** Names of these ads (null where none was given), for labelling top-ads lists. */
  async adNames(adIds: readonly string[]): Promise<Map<string, string | null>> {
    if (adIds.length === 0) return new Map();
    const r = await this.pool.query<{ ad_id: string; name: string | null }>(
      'select ad_id, name from ads where ad_id = any($1::bigint[])',
      [adIds],
    );
    return new Map(r.rows.map((row) => [row.ad_id, row.name]));
  }

  /** Every ad id of an advertiser (the speed layer is read per ad). */
  async advertiserAdIds(advertiserId: string): Promise<string[]> {
    const r = await this.pool.query<{ ad_id: string }>(
      'select ad_id from ads where advertiser_id = $1 order by ad_id',
      [advertiserId],
    );
    return r.rows.map((row) => row.ad_id);
  }
}
