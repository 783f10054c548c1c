// Provisional sums from the speed layer over the spans it owns: clicks per bucket (summed over ads)
// and per ad. A store that can aggregate where its data lives implements `SpeedSums`; for the others
// the sums are made here from `minuteCounts`, which ships one row per (ad, minute): fine for one ad,
// heavy for an advertiser with 1,000 busy ads (120,000 rows for two open hours).
import type { SpeedStore } from '../common/speed-store.js';
import { floorTo } from '../common/time.js';
import type { Count } from './merge.js';

export interface AdClicks {
  adId: string;
  clicks: number;
}

export interface SpeedTotals {
  /** Clicks per bucket of `bucketMs` (minute or hour), summed over the ads. */
  buckets: Count[];
  /** Clicks per ad over the whole span. */
  ads: AdClicks[];
}

/** Optional capability of a speed store: the sums above, computed by the store (e.g. Pinot group-bys). */
export interface SpeedSums {
  clickSums(adIds: readonly string[], from: number, to: number, bucketMs: number): Promise<SpeedTotals>;
}

const hasSums = (s: SpeedStore): s is SpeedStore & SpeedSums =>
  typeof (s as Partial<SpeedSums>).clickSums === 'function';

/** Sums of `adIds` over `spans` (each [from, to), owned by the speed layer), one store call per span. */
export async function speedTotals(
  store: SpeedStore,
  adIds: readonly string[],
  spans: ReadonlyArray<readonly [number, number]>,
  bucketMs: number,
): Promise<SpeedTotals> {
  const parts = await Promise.all(
    spans.map(async ([from, to]): Promise<SpeedTotals> => {
      if (hasSums(store)) return store.clickSums(adIds, from, to, bucketMs);
      const buckets = new Map<number, number>();
      const ads = new Map<string, number>();
      for (const c of await store.minuteCounts(adIds, from, to)) {
        const b = floorTo(c.minute, bucketMs);
        buckets.set(b, (buckets.get(b) ?? 0) + c.clicks);
        ads.set(c.adId, (ads.get(c.adId) ?? 0) + c.clicks);
      }
      return {
        buckets: [...buckets].map(([start, clicks]) => ({ start, clicks })),
        ads: [...ads].map(([adId, clicks]) => ({ adId, clicks })),
      };
    }),
  );
  return { buckets: parts.flatMap((p) => p.buckets), ads: parts.flatMap((p) => p.ads) };
}
