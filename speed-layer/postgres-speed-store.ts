// SpeedStore over speed_counts_minute (SPEED_STORE=postgres): sums the salts of each (ad, minute).
// Advertiser-wide sums walk the (advertiser_id, minute) index: no list of the advertiser's ads.
import type pg from 'pg';
import type { AdClicks, MinuteCount, SpeedStore, SpeedTotals } from '../common/speed-store.js';

export class PostgresSpeedStore implements SpeedStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly ownsPool = false,
  ) {}

  async minuteCounts(adIds: readonly string[], from: number, to: number): Promise<MinuteCount[]> {
    if (adIds.length === 0 || to <= from) return [];
    const { rows } = await this.pool.query<{ ad_id: string; minute_ms: string; clicks: string }>(
      `select ad_id, (extract(epoch from minute) * 1000)::bigint as minute_ms, sum(clicks) as clicks
         from speed_counts_minute
        where ad_id = any($1::bigint[]) and minute >= to_timestamp($2 / 1000.0) and minute < to_timestamp($3 / 1000.0)
        group by ad_id, minute
       having sum(clicks) > 0
        order by ad_id, minute`,
      [adIds, from, to],
    );
    return rows.map((r) => ({ adId: r.ad_id, minute: Number(r.minute_ms), clicks: Number(r.clicks) }));
  }

  async clickSums(
    adIds: readonly string[],
    from: number,
    to: number,
    bucketMs: number,
  ): Promise<SpeedTotals> {
    if (adIds.length === 0) return { buckets: [], ads: [] };
    return this.sums('ad_id = any($1::bigint[])', adIds, from, to, bucketMs);
  }

  async advertiserClickSums(
    advertiserId: string,
    from: number,
    to: number,
    bucketMs: number,
  ): Promise<SpeedTotals> {
    return this.sums('advertiser_id = $1', advertiserId, from, to, bucketMs);
  }

  /** Sums of the rows matching `where` (on `$1` = `key`) in [from, to), per bucket and per ad. */
  private async sums(
    where: string,
    key: unknown,
    from: number,
    to: number,
    bucketMs: number,
  ): Promise<SpeedTotals> {
    const totals: SpeedTotals = { buckets: [], ads: [] };
    if (to <= from) return totals;
    // One scan, two groupings: per bucket (ad_id null) and per ad (start null).
    const { rows } = await this.pool.query<{ ad_id: string | null; start: number | null; clicks: string }>(
      `select ad_id,
              (extract(epoch from date_bin($4 * interval '1 millisecond', minute, timestamptz '1970-01-01')) * 1000)::float8
                as start,
              sum(clicks) as clicks
         from speed_counts_minute
        where ${where} and minute >= to_timestamp($2 / 1000.0) and minute < to_timestamp($3 / 1000.0)
        group by grouping sets ((1), (2))
       having sum(clicks) > 0`,
      [key, from, to, bucketMs],
    );
    for (const r of rows) {
      if (r.ad_id !== null) totals.ads.push({ adId: r.ad_id, clicks: Number(r.clicks) });
      else if (r.start !== null) totals.buckets.push({ start: Number(r.start), clicks: Number(r.clicks) });
    }
    return totals;
  }

  async hourTotals(from: number, to: number): Promise<{ start: number; clicks: number }[]> {
    const { rows } = await this.pool.query<{ start: number; clicks: string }>(
      `select (extract(epoch from date_trunc('hour', minute at time zone 'UTC')) * 1000)::float8 as start,
              sum(clicks) as clicks
         from speed_counts_minute where minute >= $1 and minute < $2
        group by 1 having sum(clicks) > 0 order by 1`,
      [new Date(from), new Date(to)],
    );
    return rows.map((r) => ({ start: Number(r.start), clicks: Number(r.clicks) }));
  }

  async adTotals(from: number, to: number): Promise<AdClicks[]> {
    const { rows } = await this.pool.query<{ ad_id: string; clicks: string }>(
      `select ad_id, sum(clicks) as clicks from speed_counts_minute where minute >= $1 and minute < $2
        group by ad_id having sum(clicks) > 0`,
      [new Date(from), new Date(to)],
    );
    return rows.map((r) => ({ adId: r.ad_id, clicks: Number(r.clicks) }));
  }

  async ping(): Promise<void> {
    await this.pool.query('select 1 from speed_counts_minute limit 1');
  }

  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.end();
  }
}
