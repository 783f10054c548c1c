// Reads of the authoritative counts from the Pinot OFFLINE table the batch layer can publish
// (batch-layer/pinot-offline.ts: one segment per finalized hour, minute rows of (ad, advertiser)).
// The same count reads as BatchStore answers from PostgreSQL, with the same signatures, so the two
// stores can be compared (tools/store-compare.ts, docs/store.md). Hour and day series are sums over
// the minute rows; per-advertiser sums are answered from the table's star-tree index. Callers read
// finalized hours only (finalized_hours in PostgreSQL): serving from this table needs compaction to
// push an hour's segment before it records the hour as finalized (docs/store.md).
import { PinotError, query as pinotQuery, type PinotCell, type PinotEndpoints } from '../common/pinot.js';
import { DAY_MS, HOUR_MS, MINUTE_MS, dayOf } from '../common/time.js';
import type { BatchStore } from './batch-store.js';
import { finalizedSpans, isEmptyScope, type AdScope } from './finalized-range.js';
import type { Count } from './merge.js';

/** The count reads both authoritative stores answer (BatchStore's, for PostgreSQL). */
export type BatchCountReads = Pick<
  BatchStore,
  'adMinutes' | 'adHours' | 'advertiserMinutes' | 'advertiserHours' | 'adDays' | 'advertiserDays'
>;

/** The reads BatchStore hands to Pinot with BATCH_STORE=pinot: the counts, and the two top-ads sums. */
export type AuthoritativeCounts = BatchCountReads &
  Pick<BatchStore, 'adTotalsOverFinalized' | 'adDayTotals'> & {
    /** Counts before this instant are gone (the table's retention). */
    retainedFrom(now: number): number;
  };

/**
 * A broker query; a table that does not exist yet holds no counts (the OFFLINE table is created by
 * the first finalization, and until then nothing is final).
 */
async function query(sql: string, opts: Parameters<typeof pinotQuery>[1]): ReturnType<typeof pinotQuery> {
  try {
    return await pinotQuery(sql, opts);
  } catch (e) {
    if (e instanceof PinotError && /TableDoesNotExistError/.test(e.message))
      return {
        columns: [],
        types: [],
        rows: [],
        numDocsScanned: 0,
        totalDocs: 0,
        timeUsedMs: 0,
        numGroupsLimitReached: false,
      };
    throw e;
  }
}

/** Groups a top-ads sum may return: every ad of the largest advertiser (a truncated answer throws). */
const MAX_AD_GROUPS = 1_000_000;

/** Pinot has no bind parameters: ids are inlined, so only decimal ids are accepted. */
function idLiteral(id: string): string {
  if (!/^\d{1,19}$/.test(id)) throw new Error(`not a numeric id: ${JSON.stringify(id)}`);
  return id;
}

/** Series rows (start, clicks) of a broker answer as counts. */
const toCounts = (rows: PinotCell[][]): Count[] =>
  rows.map(([start, clicks]) => ({ start: Number(start), clicks: Number(clicks) }));

/** A LIMIT that holds one row per `stepMs` bucket of [from, to) (Pinot's default LIMIT is 10). */
const limitFor = (from: number, to: number, stepMs: number): number =>
  Math.max(1, Math.ceil((to - from) / stepMs));

/**
 * A day series from hour totals, as BatchStore's day reads answer: one total per day whose 24 hours
 * are all finalized, the finalized hours of any other day as they are (the merge sums them with the
 * speed layer's hours of that day). Hours that are not finalized are dropped.
 */
export function daySeriesOfHours(hours: readonly Count[], finalized: ReadonlySet<number>): Count[] {
  const wholeDay = (day: number): boolean =>
    Array.from({ length: 24 }, (_, i) => day + i * HOUR_MS).every((h) => finalized.has(h));
  const days = new Map<number, number>();
  const out: Count[] = [];
  for (const c of hours) {
    if (!finalized.has(c.start)) continue;
    const day = dayOf(c.start);
    if (wholeDay(day)) days.set(day, (days.get(day) ?? 0) + c.clicks);
    else out.push(c);
  }
  for (const [start, clicks] of days) out.push({ start, clicks });
  return out.sort((a, b) => a.start - b.start);
}

export class PinotBatchCounts implements AuthoritativeCounts {
  constructor(
    private readonly table: string,
    private readonly endpoints: PinotEndpoints = {},
    /** The OFFLINE table's retention (BATCH_PINOT_RETENTION_DAYS). */
    private readonly retentionDays = Infinity,
  ) {}

  retainedFrom(now: number): number {
    return Number.isFinite(this.retentionDays) ? dayOf(now) - this.retentionDays * DAY_MS : -Infinity;
  }

  /** The `where` condition of an ad scope: listed ads, or every ad of an advertiser (its rows). */
  private scope(ads: AdScope): string {
    if ('advertiserId' in ads) return `advertiser_id = ${idLiteral(ads.advertiserId)}`;
    return `ad_id in (${ads.map(idLiteral).join(', ')})`;
  }

  /** Per-ad sums of the rows matching `where` (one group per ad, or per ad and day). */
  private async perAd(ads: AdScope, where: string, byDay: boolean): Promise<PinotCell[][]> {
    const r = await query(
      `select ad_id${byDay ? ', day' : ''}, sum(clicks) from ${this.table}
        where ${this.scope(ads)} and (${where}) group by ad_id${byDay ? ', day' : ''} limit ${MAX_AD_GROUPS}`,
      { ...this.endpoints, queryOptions: { numGroupsLimit: MAX_AD_GROUPS } },
    );
    return r.rows;
  }

  /** BatchStore.adTotalsOverFinalized from the minute rows: whole finalized hours, finalized edge minutes. */
  async adTotalsOverFinalized(
    ads: AdScope,
    from: number,
    to: number,
    finalized: ReadonlySet<number>,
  ): Promise<Array<{ adId: string; clicks: number }>> {
    if (isEmptyScope(ads)) return [];
    const { wholeHours, edges } = finalizedSpans(from, to, finalized);
    const terms: string[] = [];
    if (wholeHours.length > 0) terms.push(`hour in (${wholeHours.join(', ')})`);
    for (const [start, end] of edges) terms.push(`(minute >= ${start} and minute < ${end})`);
    if (terms.length === 0) return [];
    const rows = await this.perAd(ads, terms.join(' or '), false);
    return rows.map(([adId, clicks]) => ({ adId: String(adId), clicks: Number(clicks) }));
  }

  /** BatchStore.adDayTotals: per-ad clicks over `hours` (finalized hour starts), per day of those hours. */
  async adDayTotals(ads: AdScope, hours: readonly number[]): Promise<Map<number, Map<string, number>>> {
    const out = new Map<number, Map<string, number>>();
    if (isEmptyScope(ads) || hours.length === 0) return out;
    for (const h of hours) out.set(dayOf(h), new Map());
    for (const [adId, day, clicks] of await this.perAd(ads, `hour in (${hours.join(', ')})`, true))
      out.get(Number(day))?.set(String(adId), Number(clicks));
    return out;
  }

  /** Sum of clicks per `bucket` column over one key's rows in [from, to). */
  private async series(
    key: 'ad_id' | 'advertiser_id',
    id: string,
    bucket: 'minute' | 'hour' | 'day',
    from: number,
    to: number,
    stepMs: number,
  ): Promise<Count[]> {
    const r = await query(
      `select ${bucket}, sum(clicks) from ${this.table}
        where ${key} = ${idLiteral(id)} and minute >= ${from} and minute < ${to}
        group by ${bucket} limit ${limitFor(from, to, stepMs)}`,
      this.endpoints,
    );
    return toCounts(r.rows);
  }

  /** One ad's minute rows in [from, to): one row per minute, no aggregation needed. */
  async adMinutes(adId: string, from: number, to: number): Promise<Count[]> {
    const r = await query(
      `select minute, clicks from ${this.table}
        where ad_id = ${idLiteral(adId)} and minute >= ${from} and minute < ${to}
        limit ${limitFor(from, to, MINUTE_MS)}`,
      this.endpoints,
    );
    return toCounts(r.rows);
  }

  async adHours(adId: string, from: number, to: number): Promise<Count[]> {
    return this.series('ad_id', adId, 'hour', from, to, HOUR_MS);
  }

  async advertiserMinutes(advertiserId: string, from: number, to: number): Promise<Count[]> {
    return this.series('advertiser_id', advertiserId, 'minute', from, to, MINUTE_MS);
  }

  async advertiserHours(advertiserId: string, from: number, to: number): Promise<Count[]> {
    return this.series('advertiser_id', advertiserId, 'hour', from, to, HOUR_MS);
  }

  /**
   * One ad's day series in [from, to), as BatchStore gives it: a day total for each day whose 24
   * hours are all finalized, hour totals for the finalized hours of the other days (the merge sums
   * them; their unfinalized hours come from the speed layer).
   */
  async adDays(adId: string, from: number, to: number, finalized: ReadonlySet<number>): Promise<Count[]> {
    return this.daySeries('ad_id', adId, from, to, finalized);
  }

  async advertiserDays(
    advertiserId: string,
    from: number,
    to: number,
    finalized: ReadonlySet<number>,
  ): Promise<Count[]> {
    return this.daySeries('advertiser_id', advertiserId, from, to, finalized);
  }

  private async daySeries(
    key: 'ad_id' | 'advertiser_id',
    id: string,
    from: number,
    to: number,
    finalized: ReadonlySet<number>,
  ): Promise<Count[]> {
    return daySeriesOfHours(await this.series(key, id, 'hour', from, to, HOUR_MS), finalized);
  }
}
