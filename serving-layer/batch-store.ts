// Reads of the batch layer's authoritative counts in PostgreSQL (migrations/003_batch.sql) and of the
// catalogue rows the serving layer needs (who owns an ad, an advertiser's ad ids). Every query walks
// a primary key: per-ad series by (ad_id, minute|hour|day), per-advertiser series from the rollup
// tables by (advertiser_id, minute|hour|day), so "1,000 ads over 7 days" is 168 rows, not 168,000,
// and 90 days by day is 90 rows. The tables are partitioned by time (migrations/007_time_partitions.sql).
import type pg from 'pg';
import { DAY_MS, HOUR_MS, hourOf } from '../common/time.js';
import type { ReconciliationReport } from '../common/reconciliation.js';
import type { Count } from './merge.js';
import type { HourFailureKind } from './hour-state.js';
import { config } from '../common/config.js';
import { PinotBatchCounts, type AuthoritativeCounts } from './pinot-batch-counts.js';

export interface FinalizedHour {
  hour: number;
  /** Grows each time a finalization changes the hour's numbers (late clicks). */
  revision: number;
  runId: string;
  workflowId: string;
  finalizedAt: number;
  validClicks: number;
  events: number;
}

/** One finalization of an hour that changed its numbers (hour_revisions). */
export interface HourRevision {
  revision: number;
  finalizedAt: number;
  runId: string;
  workflowId: string;
  validClicks: number;
  events: number;
}

/** An hour's last failed compaction. */
export interface HourFailure {
  failedAt: number;
  workflowId: string;
  reason: string;
  /** `waiting`: it waits (or gave up waiting) for completeness, `reason` says for what; `failed`: an error. */
  kind: HourFailureKind;
}

/** What one revision of an hour changed for one ad or advertiser (migration 010). */
export interface Adjustment {
  hour: number;
  revision: number;
  finalizedAt: number;
  scope: 'ad' | 'advertiser';
  id: string;
  /** The ad's advertiser (scope `ad`), or the advertiser itself. */
  advertiserId: string | null;
  clicksBefore: number;
  clicksAfter: number;
}

/** A stored daily reconciliation report and when it was made. */
export interface StoredReconciliation {
  createdAt: number;
  report: ReconciliationReport;
}

const ts = (ms: number): Date => new Date(ms);

/** Which ads a per-ad sum covers: listed ones, or every ad of an advertiser (no id list in the query). */
export type AdScope = readonly string[] | { advertiserId: string };
/** The `where` condition on `ad_id` for `scope`, its value bound as `$1`. */
const adCondition = (scope: AdScope): [string, unknown] =>
  'advertiserId' in scope
    ? ['ad_id in (select ad_id from ads where advertiser_id = $1)', scope.advertiserId]
    : ['ad_id = any($1::bigint[])', scope];
const isEmpty = (scope: AdScope): boolean => !('advertiserId' in scope) && scope.length === 0;
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
 * Hour state, revisions, adjustments and the catalogue always come from PostgreSQL; the counts come
 * from PostgreSQL's count tables, or with `pinot` (default: BATCH_STORE) from the Pinot OFFLINE table.
 */
export class BatchStore {
  constructor(
    private readonly pool: pg.Pool,
    /** null: PostgreSQL whatever BATCH_STORE says (tools comparing the two stores). */
    private readonly pinot: AuthoritativeCounts | null | undefined = configuredCounts(),
  ) {}

  /** Finalized hours touching [from, to), with their run, as recorded by hourly compaction. */
  async finalizedHours(from: number, to: number): Promise<FinalizedHour[]> {
    const r = await this.pool.query<{
      hour: Date;
      run_id: string;
      workflow_id: string;
      finalized_at: Date;
      valid_clicks: string;
      events: string;
      revision: number;
    }>(
      `select hour, run_id, workflow_id, finalized_at, valid_clicks, events, revision
         from finalized_hours where hour >= $1 and hour < $2 order by hour`,
      [ts(hourOf(from)), ts(to)],
    );
    return r.rows.map((row) => ({
      hour: row.hour.getTime(),
      revision: row.revision,
      runId: row.run_id,
      workflowId: row.workflow_id,
      finalizedAt: row.finalized_at.getTime(),
      validClicks: Number(row.valid_clicks),
      events: Number(row.events),
    }));
  }

  /** Every revision of each hour in [from, to): when it was made, by which run, with which counts. */
  async hourRevisions(from: number, to: number): Promise<Map<number, HourRevision[]>> {
    const r = await this.pool.query<{
      hour: Date;
      revision: number;
      finalized_at: Date;
      run_id: string;
      workflow_id: string;
      valid_clicks: string;
      events: string;
    }>(
      `select hour, revision, finalized_at, run_id, workflow_id, valid_clicks, events from hour_revisions
        where hour >= $1 and hour < $2 order by hour, revision`,
      [ts(hourOf(from)), ts(to)],
    );
    const byHour = new Map<number, HourRevision[]>();
    for (const row of r.rows) {
      const list = byHour.get(row.hour.getTime()) ?? [];
      list.push({
        revision: row.revision,
        finalizedAt: row.finalized_at.getTime(),
        runId: row.run_id,
        workflowId: row.workflow_id,
        validClicks: Number(row.valid_clicks),
        events: Number(row.events),
      });
      byHour.set(row.hour.getTime(), list);
    }
    return byHour;
  }

  /** The last failed compaction of each hour in [from, to) that has one (hour_failures). */
  async hourFailures(from: number, to: number): Promise<Map<number, HourFailure>> {
    const r = await this.pool.query<{
      hour: Date;
      failed_at: Date;
      workflow_id: string;
      reason: string;
      kind: HourFailureKind;
    }>(
      'select hour, failed_at, workflow_id, reason, kind from hour_failures where hour >= $1 and hour < $2',
      [ts(hourOf(from)), ts(to)],
    );
    return new Map(
      r.rows.map((row) => [
        row.hour.getTime(),
        {
          failedAt: row.failed_at.getTime(),
          workflowId: row.workflow_id,
          reason: row.reason,
          kind: row.kind,
        },
      ]),
    );
  }

  /**
   * Adjustments of hours in [from, to): every ad and advertiser whose final count a revision after
   * the hour's first changed, oldest hour and revision first. `advertiserId`: only that advertiser
   * (its own row and its ads' rows).
   */
  async adjustments(from: number, to: number, advertiserId?: string, limit = 10_000): Promise<Adjustment[]> {
    const r = await this.pool.query<{
      hour: Date;
      revision: number;
      finalized_at: Date;
      scope: 'ad' | 'advertiser';
      id: string;
      advertiser_id: string | null;
      clicks_before: string;
      clicks_after: string;
    }>(
      `select a.hour, a.revision, r.finalized_at, a.scope, a.id,
              case when a.scope = 'ad' then ads.advertiser_id else a.id end as advertiser_id,
              a.clicks_before, a.clicks_after
         from hour_adjustments a
         join hour_revisions r on r.hour = a.hour and r.revision = a.revision
         left join ads on a.scope = 'ad' and ads.ad_id = a.id
        where a.hour >= $1 and a.hour < $2
          and ($3::bigint is null or (a.scope = 'advertiser' and a.id = $3) or (a.scope = 'ad' and ads.advertiser_id = $3))
        order by a.hour, a.revision, a.scope desc, a.id
        limit $4`,
      [ts(from), ts(to), advertiserId ?? null, limit],
    );
    return r.rows.map((row) => ({
      hour: row.hour.getTime(),
      revision: row.revision,
      finalizedAt: row.finalized_at.getTime(),
      scope: row.scope,
      id: row.id,
      advertiserId: row.advertiser_id,
      clicksBefore: Number(row.clicks_before),
      clicksAfter: Number(row.clicks_after),
    }));
  }

  /** The raw cutoff retention recorded for this S3 prefix (raw files of earlier hours are gone). */
  async rawCutoff(prefix: string): Promise<number | undefined> {
    const r = await this.pool.query<{ raw_before: Date }>(
      'select raw_before from raw_expiry where prefix = $1',
      [prefix],
    );
    return r.rows[0]?.raw_before.getTime();
  }

  /** Just the hour starts of `finalizedHours`, as the merge wants them. */
  async finalizedHourSet(from: number, to: number): Promise<Set<number>> {
    const r = await this.pool.query<{ hour: Date }>(
      'select hour from finalized_hours where hour >= $1 and hour < $2',
      [ts(hourOf(from)), ts(to)],
    );
    return new Set(r.rows.map((row) => row.hour.getTime()));
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
    if (isEmpty(ads)) return [];
    const [adsWhere, adsValue] = adCondition(ads);
    const wholeFrom = Math.ceil(from / HOUR_MS) * HOUR_MS;
    const wholeTo = Math.max(wholeFrom, hourOf(to));
    const wholeHours = [...finalized].filter((h) => h >= wholeFrom && h < wholeTo).map(ts);
    // The partial hours at both ends, only where that hour is finalized (at most two spans).
    const edges: Array<[number, number]> = [];
    if (from < wholeFrom && finalized.has(hourOf(from))) edges.push([from, Math.min(wholeFrom, to)]);
    if (to > wholeTo && finalized.has(wholeTo)) edges.push([wholeTo, to]);
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
      [adsValue, wholeHours, e1from, e1to, e2from, e2to],
    );
    return r.rows.map((row) => ({ adId: row.ad_id, clicks: Number(row.clicks) }));
  }

  /** Per-ad clicks over `hours` (finalized hour starts) from the hour rollups, per day of those hours. */
  async adDayTotals(ads: AdScope, hours: readonly number[]): Promise<Map<number, Map<string, number>>> {
    if (this.pinot) return this.pinot.adDayTotals(ads, hours);
    const out = new Map<number, Map<string, number>>();
    if (isEmpty(ads) || hours.length === 0) return out;
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

  /** The daily reconciliation report of `day` (YYYY-MM-DD), or undefined if none was written. */
  async reconciliation(day: string): Promise<StoredReconciliation | undefined> {
    const r = await this.pool.query<{ created_at: Date; report: ReconciliationReport }>(
      `select created_at, report from reconciliation_reports where day = $1::date`,
      [day],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return { createdAt: row.created_at.getTime(), report: row.report };
  }
}
