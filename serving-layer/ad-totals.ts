// Per-ad clicks over the finalized hours of a range (the batch half of an advertiser's top ads). The
// finalized hours of one day never change unless a run re-finalizes one of them, so each day's per-ad
// sums over the range's finalized hours are cached under those hours' run versions: a backfill or a
// newly finalized hour changes the key, never a stale hit. Without it "1,000 ads over 7 days" sums
// 168,000 hour rows, and an advertiser with 100,000 ads millions, on every request. The cache is
// bounded by the number of (ad, day) entries it holds.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { DAY_MS, HOUR_MS, hourOf } from '../common/time.js';
import type { AdScope, BatchStore, FinalizedHour } from './batch-store.js';
import type { AdClicks } from './speed-sums.js';

export class FinalizedAdTotals {
  private readonly days: LRUCache<string, Map<string, number>>;
  // The sum over a range's days, under the days' keys: a dashboard polling one range adds nothing up.
  private readonly ranges: LRUCache<string, AdClicks[]>;

  constructor(
    private readonly batch: BatchStore,
    maxEntries = 2_000_000,
  ) {
    this.days = new LRUCache({ maxSize: maxEntries, sizeCalculation: (m) => Math.max(1, m.size) });
    this.ranges = new LRUCache({ maxSize: maxEntries / 2, sizeCalculation: (a) => Math.max(1, a.length) });
  }

  /** `ads`: every ad of the advertiser (keyed by it), or a list of its ads. */
  async totals(
    advertiserId: string,
    ads: AdScope,
    from: number,
    to: number,
    hours: readonly FinalizedHour[],
  ): Promise<AdClicks[]> {
    const sum = new Map<string, number>();
    const add = (adId: string, clicks: number) => sum.set(adId, (sum.get(adId) ?? 0) + clicks);

    // Whole finalized hours of the range, by day: from the cache, or fetched together.
    const wholeFrom = Math.ceil(from / HOUR_MS) * HOUR_MS;
    const wholeTo = hourOf(to);
    const byDay = new Map<number, FinalizedHour[]>();
    for (const h of hours) {
      if (h.hour < wholeFrom || h.hour >= wholeTo) continue;
      const day = h.hour - (h.hour % DAY_MS);
      byDay.set(day, [...(byDay.get(day) ?? []), h]);
    }
    const scope = 'advertiserId' in ads ? 'all' : ads.length;
    const keys = [...byDay].map(([day, list]) => {
      const versions = list.map((h) => `${h.hour}:${h.runId}@${h.finalizedAt}`).join(',');
      return `${advertiserId}:${scope}:${day}:${createHash('sha1').update(versions).digest('hex')}`;
    });
    const finalized = new Set(hours.map((h) => h.hour));
    const edges = new Set(
      [hourOf(from), wholeTo].filter((h) => finalized.has(h) && (h < wholeFrom || h >= wholeTo)),
    );
    const rangeKey = edges.size === 0 ? keys.join('|') : undefined;
    const known = rangeKey === undefined ? undefined : this.ranges.get(rangeKey);
    if (known) return known;

    const missing: Array<{ day: number; key: string; hours: number[] }> = [];
    for (const [i, [day, list]] of [...byDay].entries()) {
      const key = keys[i]!;
      const hit = this.days.get(key);
      if (hit) for (const [adId, clicks] of hit) add(adId, clicks);
      else missing.push({ day, key, hours: list.map((h) => h.hour) });
    }
    const fetched = await this.batch.adDayTotals(
      ads,
      missing.flatMap((m) => m.hours),
    );
    for (const { day, key } of missing) {
      const perAd = fetched.get(day) ?? new Map<string, number>();
      this.days.set(key, perAd);
      for (const [adId, clicks] of perAd) add(adId, clicks);
    }

    // The partial hours at the ends of a minute-aligned range, where finalized, from SQL.
    if (edges.size > 0)
      for (const r of await this.batch.adTotalsOverFinalized(ads, from, to, edges)) add(r.adId, r.clicks);
    const totals = [...sum].map(([adId, clicks]) => ({ adId, clicks }));
    if (rangeKey !== undefined) this.ranges.set(rangeKey, totals);
    return totals;
  }
}

/**
 * The batch totals that can make the `top` list (merge.ts topAds): the `top` best by batch clicks
 * (ties: smaller id) and every ad the speed layer has clicks for. An ad in neither ranks below those
 * `top` ads whatever the speed layer adds, so 100,000 ads need no sort of 100,000 entries.
 */
export function topCandidates(
  batch: readonly AdClicks[],
  speed: readonly AdClicks[],
  top: number,
): AdClicks[] {
  if (batch.length <= top * 4) return [...batch];
  const better = (a: AdClicks, b: AdClicks): boolean =>
    a.clicks > b.clicks ||
    (a.clicks === b.clicks &&
      (a.adId.length < b.adId.length || (a.adId.length === b.adId.length && a.adId < b.adId)));
  const best: AdClicks[] = [];
  for (const r of batch) {
    if (best.length === top && !better(r, best[top - 1]!)) continue;
    let i = Math.min(best.length, top - 1);
    while (i > 0 && better(r, best[i - 1]!)) i--;
    best.splice(i, 0, r);
    if (best.length > top) best.pop();
  }
  const chosen = new Set(best.map((r) => r.adId));
  const inSpeed = new Set(speed.map((r) => r.adId));
  for (const r of batch) if (inSpeed.has(r.adId) && !chosen.has(r.adId)) best.push(r);
  return best;
}
