// Provisional sums from the speed layer over the spans it owns (the hours not finalized yet): clicks
// per bucket (summed over ads) and per ad, one store call per span.
import type { SpeedStore, SpeedTotals } from '../common/speed-store.js';

export type { AdClicks, SpeedTotals } from '../common/speed-store.js';

/** Sums of `adIds` over `spans` (each [from, to), owned by the speed layer). */
export async function speedTotals(
  store: SpeedStore,
  adIds: readonly string[],
  spans: ReadonlyArray<readonly [number, number]>,
  bucketMs: number,
): Promise<SpeedTotals> {
  const parts = await Promise.all(spans.map(([from, to]) => store.clickSums(adIds, from, to, bucketMs)));
  return { buckets: parts.flatMap((p) => p.buckets), ads: parts.flatMap((p) => p.ads) };
}
