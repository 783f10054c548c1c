// SpeedStore over the Pinot REALTIME table fed from the count topic (SPEED_STORE=pinot, the
// default). Each row is a delta of one part of an (ad, salt, minute) count (see minute-window.ts),
// or, in a table of cumulative rows, the part's running count, of which the upsert keeps the latest;
// either way these queries sum the rows, parts and salts. Advertiser-wide
// sums filter on the row's advertiserId (inverted index), not on a list of the advertiser's ads.
import { LRUCache } from 'lru-cache';
import { config } from '../common/config.js';
import { query, type PinotCell } from '../common/pinot.js';
import { floorTo, HOUR_MS } from '../common/time.js';
import type { AdClicks, MinuteCount, SpeedStore, SpeedTotals } from '../common/speed-store.js';
import { isId } from '../common/ids.js';

/** Groups one reconciliation query may return; more and the id range is split (see adTotals). */
const AD_PAGE = 20_000;
// Ads of one advertiser with provisional clicks in one query (Pinot's default group limit per
// server is 100,000 groups: an advertiser with more active ads gets an approximate per-ad list).
const ADVERTISER_ADS_LIMIT = 1_000_000;
/**
 * (ad, minute) groups an advertiser-wide read takes in one query. Pinot's cost of a query is mostly
 * fixed (~4 ms of its CPU for the two small group-bys of a polled dashboard, whatever they scan), so
 * an advertiser whose ads clicked in fewer (ad, minute) pairs than this is read with one group-by by
 * both, its minutes and ads summed here; a wider one with one group-by per minute and one per ad.
 */
const ADVERTISER_GROUPS = 2_000;

export class PinotSpeedStore implements SpeedStore {
  constructor(
    private readonly brokerUrl: string = config.PINOT_BROKER_URL,
    private readonly table: string = config.SPEED_PINOT_TABLE,
    /**
     * The per-ad totals' limits: Pinot's per-segment group limit (query option `numGroupsLimit`; the
     * server's own when absent) and the most groups one query returns (AD_PAGE).
     */
    private readonly adTotalsLimits: { numGroupsLimit?: number; pageSize?: number } = {},
    /** The most (ad, minute) groups of an advertiser read in one query (ADVERTISER_GROUPS). */
    private readonly advertiserGroups: number = ADVERTISER_GROUPS,
  ) {}

  /**
   * Advertisers (and range lengths) whose last read had more (ad, minute) groups than one query
   * takes: their dashboards go straight to the two group-bys, not first to the one that comes back
   * too wide each time.
   */
  private readonly wide = new LRUCache<string, true>({ max: 10_000, ttl: 10 * 60_000 });

  /** The `where` clause of a query over these ads and [from, to). */
  private filter(adIds: readonly string[], from: number, to: number): string {
    // Pinot has no bind parameters: ids are checked against the id pattern before they are inlined.
    for (const id of adIds) if (!isId(id)) throw new Error(`malformed ad id ${JSON.stringify(id)}`);
    const ids = adIds.map((id) => `'${id}'`).join(', ');
    return `where adId in (${ids}) and "minute" >= ${Math.floor(from)} and "minute" < ${Math.floor(to)}`;
  }

  async minuteCounts(adIds: readonly string[], from: number, to: number): Promise<MinuteCount[]> {
    if (adIds.length === 0 || to <= from) return [];
    const maxRows = adIds.length * Math.ceil((to - from) / 60_000) + 1;
    const sql =
      `select adId, "minute", sum(clicks) from ${this.table} ${this.filter(adIds, from, to)} ` +
      `group by adId, "minute" order by adId, "minute" limit ${maxRows}`;
    const { rows } = await query(sql, { brokerUrl: this.brokerUrl, queryOptions: { timeoutMs: 5000 } });
    return rows
      .map(([adId, minute, clicks]) => ({
        adId: String(adId),
        minute: Number(minute),
        clicks: Number(clicks),
      }))
      .filter((r) => r.clicks > 0);
  }

  async clickSums(
    adIds: readonly string[],
    from: number,
    to: number,
    bucketMs: number,
  ): Promise<SpeedTotals> {
    if (adIds.length === 0 || to <= from) return { buckets: [], ads: [] };
    // One ad (an advertiser's dashboard, the ad endpoint): its total is the sum of its minutes, so
    // the per-ad group-by is not asked for (each query cost Pinot ~5 ms of CPU at 50 queries/s).
    const only = adIds.length === 1 ? adIds[0] : undefined;
    return this.sums(this.filter(adIds, from, to), from, to, bucketMs, adIds.length + 1, only);
  }

  async advertiserClickSums(
    advertiserId: string,
    from: number,
    to: number,
    bucketMs: number,
  ): Promise<SpeedTotals> {
    if (to <= from) return { buckets: [], ads: [] };
    if (!isId(advertiserId)) throw new Error(`malformed advertiser id ${JSON.stringify(advertiserId)}`);
    const where = `where advertiserId = '${advertiserId}' and "minute" >= ${Math.floor(from)} and "minute" < ${Math.floor(to)}`;
    // Per advertiser and range length: a polling dashboard asks the same span, sliding.
    const shape = `${advertiserId}:${to - from}`;
    if (!this.wide.has(shape)) {
      const limit = this.advertiserGroups;
      const r = await query(
        `select adId, "minute", sum(clicks) from ${this.table} ${where} group by adId, "minute" limit ${limit}`,
        { brokerUrl: this.brokerUrl, queryOptions: { timeoutMs: 5000 }, allowTruncatedGroups: true },
      );
      // Fewer groups than the limit, none dropped by a server: every (ad, minute) of the range.
      if (r.rows.length < limit && !r.numGroupsLimitReached) return totalsOfPairs(r.rows, bucketMs);
      this.wide.set(shape, true);
    }
    return this.sums(where, from, to, bucketMs, ADVERTISER_ADS_LIMIT);
  }

  /**
   * Per-bucket and per-ad sums of the rows `where` selects; at most `maxAds` ads. `onlyAd`: the rows
   * are all of this one ad, whose total is then the sum of the buckets (one query, not two).
   */
  private async sums(
    where: string,
    from: number,
    to: number,
    bucketMs: number,
    maxAds: number,
    onlyAd?: string,
  ): Promise<SpeedTotals> {
    const totals: SpeedTotals = { buckets: [], ads: [] };
    const opts = { brokerUrl: this.brokerUrl, queryOptions: { timeoutMs: 5000 } };
    // Two small group-bys (minutes of the span, ads) instead of one row per (ad, minute).
    const [perMinute, perAd] = await Promise.all([
      query(
        `select "minute", sum(clicks) from ${this.table} ${where} group by "minute" limit ${Math.ceil((to - from) / 60_000) + 1}`,
        opts,
      ),
      onlyAd === undefined
        ? query(`select adId, sum(clicks) from ${this.table} ${where} group by adId limit ${maxAds}`, opts)
        : undefined,
    ]);
    totals.buckets = bucketSums(perMinute.rows as Array<[PinotCell, PinotCell]>, bucketMs);
    if (perAd === undefined) {
      const clicks = totals.buckets.reduce((sum, b) => sum + b.clicks, 0);
      if (clicks > 0) totals.ads.push({ adId: onlyAd!, clicks });
    } else
      for (const [adId, clicks] of perAd.rows)
        if (Number(clicks) > 0) totals.ads.push({ adId: String(adId), clicks: Number(clicks) });
    return totals;
  }

  async hourTotals(from: number, to: number): Promise<{ start: number; clicks: number }[]> {
    if (to <= from) return [];
    const hour = `"minute" - mod("minute", ${HOUR_MS})`;
    const { rows } = await query(
      `select ${hour}, sum(clicks) from ${this.table}
        where "minute" >= ${Math.floor(from)} and "minute" < ${Math.floor(to)}
        group by ${hour} limit ${Math.ceil((to - from) / HOUR_MS) + 1}`,
      { brokerUrl: this.brokerUrl, queryOptions: { timeoutMs: 10_000 } },
    );
    return rows
      .map(([start, clicks]) => ({ start: Number(start), clicks: Number(clicks) }))
      .filter((r) => r.clicks > 0)
      .sort((a, b) => a.start - b.start);
  }

  /**
   * Every ad's total, complete: one group-by while it fits (under AD_PAGE groups and the servers'
   * group limit); a truncated answer splits the ids by their next digit (ids are decimal strings,
   * so `adId >= 'p' and adId < 'p:'` is every id starting with p) until each part fits.
   */
  async adTotals(from: number, to: number): Promise<AdClicks[]> {
    const page = this.adTotalsLimits.pageSize ?? AD_PAGE;
    const { numGroupsLimit } = this.adTotalsLimits;
    const out: AdClicks[] = [];
    // Id ranges still to read: every id starting with `prefix`, or (exact) the id equal to it.
    const ranges: Array<{ prefix: string; exact?: true }> = [{ prefix: '' }];
    while (ranges.length > 0) {
      const { prefix: p, exact } = ranges.shift()!;
      const range = exact ? ` and adId = '${p}'` : p === '' ? '' : ` and adId >= '${p}' and adId < '${p}:'`;
      const r = await query(
        `select adId, sum(clicks) from ${this.table}
          where "minute" >= ${Math.floor(from)} and "minute" < ${Math.floor(to)}${range}
          group by adId limit ${page}`,
        {
          brokerUrl: this.brokerUrl,
          allowTruncatedGroups: true,
          queryOptions: {
            timeoutMs: 10_000,
            ...(numGroupsLimit && { numGroupsLimit }),
          },
        },
      );
      if (!exact && (r.numGroupsLimitReached || r.rows.length >= page)) {
        if (p.length >= 18) throw new Error(`cannot narrow the per-ad totals below prefix ${p}`);
        if (p !== '') ranges.push({ prefix: p, exact: true });
        for (let d = p === '' ? 1 : 0; d <= 9; d++) ranges.push({ prefix: `${p}${d}` });
        continue;
      }
      for (const [adId, clicks] of r.rows)
        if (Number(clicks) > 0) out.push({ adId: String(adId), clicks: Number(clicks) });
    }
    return out;
  }

  async ping(): Promise<void> {
    await query(`select count(*) from ${this.table} limit 1`, { brokerUrl: this.brokerUrl, timeoutMs: 3000 });
  }

  async close(): Promise<void> {}
}

/** Per-bucket and per-ad sums (those above 0) of (adId, minute, clicks) rows. */
export function totalsOfPairs(rows: readonly PinotCell[][], bucketMs: number): SpeedTotals {
  const ads = new Map<string, number>();
  for (const [adId, , clicks] of rows) ads.set(String(adId), (ads.get(String(adId)) ?? 0) + Number(clicks));
  return {
    buckets: bucketSums(
      rows.map(([, minute, clicks]) => [minute, clicks] as [PinotCell, PinotCell]),
      bucketMs,
    ),
    ads: [...ads].filter(([, clicks]) => clicks > 0).map(([adId, clicks]) => ({ adId, clicks })),
  };
}

/** Sums of (minute, clicks) rows per bucket of `bucketMs`, those above 0. */
function bucketSums(
  rows: ReadonlyArray<readonly [PinotCell, PinotCell]>,
  bucketMs: number,
): SpeedTotals['buckets'] {
  const buckets = new Map<number, number>();
  for (const [minute, clicks] of rows) {
    const start = floorTo(Number(minute), bucketMs);
    buckets.set(start, (buckets.get(start) ?? 0) + Number(clicks));
  }
  return [...buckets].filter(([, clicks]) => clicks > 0).map(([start, clicks]) => ({ start, clicks }));
}
