// SpeedStore over the Pinot REALTIME table fed from `minute_counts` (SPEED_STORE=pinot, the
// default). Each row is one part of an (ad, salt, minute) count (see minute-window.ts); the upsert
// keeps the latest committed value of each part, and this query sums parts and salts. Advertiser-wide
// sums filter on the row's advertiserId (inverted index), not on a list of the advertiser's ads.
import { config } from '../common/config.js';
import { query } from '../common/pinot.js';
import { floorTo } from '../common/time.js';
import type { MinuteCount, SpeedStore, SpeedTotals } from '../common/speed-store.js';
import { isId } from '../common/ids.js';

// Ads of one advertiser with provisional clicks in one query (Pinot's default group limit per
// server is 100,000 groups: an advertiser with more active ads gets an approximate per-ad list).
const ADVERTISER_ADS_LIMIT = 1_000_000;

export class PinotSpeedStore implements SpeedStore {
  constructor(
    private readonly brokerUrl: string = config.PINOT_BROKER_URL,
    private readonly table: string = config.SPEED_PINOT_TABLE,
  ) {}

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
    return this.sums(this.filter(adIds, from, to), from, to, bucketMs, adIds.length + 1);
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
    return this.sums(where, from, to, bucketMs, ADVERTISER_ADS_LIMIT);
  }

  /** Per-bucket and per-ad sums of the rows `where` selects; at most `maxAds` ads. */
  private async sums(
    where: string,
    from: number,
    to: number,
    bucketMs: number,
    maxAds: number,
  ): Promise<SpeedTotals> {
    const totals: SpeedTotals = { buckets: [], ads: [] };
    const opts = { brokerUrl: this.brokerUrl, queryOptions: { timeoutMs: 5000 } };
    // Two small group-bys (minutes of the span, ads) instead of one row per (ad, minute).
    const [perMinute, perAd] = await Promise.all([
      query(
        `select "minute", sum(clicks) from ${this.table} ${where} group by "minute" limit ${Math.ceil((to - from) / 60_000) + 1}`,
        opts,
      ),
      query(`select adId, sum(clicks) from ${this.table} ${where} group by adId limit ${maxAds}`, opts),
    ]);
    const buckets = new Map<number, number>();
    for (const [minute, clicks] of perMinute.rows) {
      const start = floorTo(Number(minute), bucketMs);
      buckets.set(start, (buckets.get(start) ?? 0) + Number(clicks));
    }
    for (const [start, clicks] of buckets) if (clicks > 0) totals.buckets.push({ start, clicks });
    for (const [adId, clicks] of perAd.rows)
      if (Number(clicks) > 0) totals.ads.push({ adId: String(adId), clicks: Number(clicks) });
    return totals;
  }

  async ping(): Promise<void> {
    await query(`select count(*) from ${this.table} limit 1`, { brokerUrl: this.brokerUrl, timeoutMs: 3000 });
  }

  async close(): Promise<void> {}
}
