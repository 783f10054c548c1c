// Per-ad clicks over the finalized hours of a range (the batch half of an advertiser's top ads). A day
// whose 24 hours are all finalized never changes unless a run re-finalizes one of its hours, so its
// per-ad sums are cached under the day's run versions: a backfill changes the key, never a stale hit.
// Without it "1,000 ads over 7 days" sums 168,000 hour rows on every request.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { DAY_MS, HOUR_MS } from '../common/time.js';
import type { AdScope, BatchStore, FinalizedHour } from './batch-store.js';
import type { AdClicks } from './speed-sums.js';

export class FinalizedAdTotals {
  private readonly days: LRUCache<string, Map<string, number>>;

  constructor(
    private readonly batch: BatchStore,
    maxDays = 1000,
  ) {
    this.days = new LRUCache({ max: maxDays });
  }

  /** `ads`: every ad of the advertiser (keyed by it), or a list of its ads. */
  async totals(
    advertiserId: string,
    ads: AdScope,
    from: number,
    to: number,
    hours: readonly FinalizedHour[],
  ): Promise<AdClicks[]> {
    const version = new Map(hours.map((h) => [h.hour, `${h.runId}@${h.finalizedAt}`]));
    const sum = new Map<string, number>();
    const add = (adId: string, clicks: number) => sum.set(adId, (sum.get(adId) ?? 0) + clicks);

    // Whole days of the range that are entirely finalized: from the cache, or fetched together.
    const cachedDays = new Set<number>();
    const missing: Array<{ day: number; key: string }> = [];
    for (let d = Math.ceil(from / DAY_MS) * DAY_MS; d + DAY_MS <= to; d += DAY_MS) {
      const versions: string[] = [];
      for (let h = d; h < d + DAY_MS; h += HOUR_MS) versions.push(version.get(h) ?? '');
      if (versions.includes('')) continue;
      cachedDays.add(d);
      const scope = 'advertiserId' in ads ? 'all' : ads.length;
      const key = `${advertiserId}:${scope}:${d}:${createHash('sha1').update(versions.join(',')).digest('hex')}`;
      const hit = this.days.get(key);
      if (hit) {
        for (const [adId, clicks] of hit) add(adId, clicks);
      } else missing.push({ day: d, key });
    }
    const fetched = await this.batch.adDayTotals(
      ads,
      missing.map((m) => m.day),
    );
    for (const { day, key } of missing) {
      const perAd = fetched.get(day) ?? new Map<string, number>();
      this.days.set(key, perAd);
      for (const [adId, clicks] of perAd) add(adId, clicks);
    }

    // The finalized hours outside those days (partial days, partial hours at the ends) from SQL.
    const rest = new Set([...version.keys()].filter((h) => !cachedDays.has(h - (h % DAY_MS))));
    for (const r of await this.batch.adTotalsOverFinalized(ads, from, to, rest)) add(r.adId, r.clicks);
    return [...sum].map(([adId, clicks]) => ({ adId, clicks }));
  }
}
