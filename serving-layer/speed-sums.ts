// Provisional sums from the speed layer over the spans it owns (the hours not finalized yet): clicks
// per bucket (summed over ads) and per ad, one store call per span, bounded in time.
import type { SpeedStore, SpeedTotals } from '../common/speed-store.js';
import { HOUR_MS, MINUTE_MS } from '../common/time.js';
import { speedSpans } from './merge.js';
import type { TimeRange } from './query.js';

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

/** The speed layer's part of an answer, or why it is missing (down, or slower than the timeout). */
export type SpeedPart = { totals: SpeedTotals } | { totals: null; reason: string };

/**
 * Provisional sums of `adIds` over the hours of `range` that are not finalized (none: no call), per
 * minute for minute series and per hour otherwise. A failing or slow store yields the reason instead.
 */
export async function speedPart(
  store: SpeedStore,
  adIds: readonly string[],
  range: TimeRange,
  finalized: ReadonlySet<number>,
  timeoutMs: number,
): Promise<SpeedPart> {
  const spans = speedSpans(range, finalized);
  if (spans.length === 0 || adIds.length === 0) return { totals: { buckets: [], ads: [] } };
  const bucketMs = range.granularity === 'minute' ? MINUTE_MS : HOUR_MS;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return { totals: await Promise.race([speedTotals(store, adIds, spans, bucketMs), timeout]) };
  } catch (e) {
    return { totals: null, reason: `speed layer unavailable: ${(e as Error).message}` };
  } finally {
    clearTimeout(timer);
  }
}
