// Provisional sums from the speed layer over the spans it owns (the hours not finalized yet): clicks
// per bucket (summed over ads) and per ad, one store call per span, bounded in time.
import type { SpeedStore, SpeedTotals } from '../common/speed-store.js';
import { HOUR_MS, MINUTE_MS } from '../common/time.js';
import { withDeadline } from '../common/wait.js';
import { speedSpans } from './merge.js';
import type { TimeRange } from './query.js';

export type { AdClicks, SpeedTotals } from '../common/speed-store.js';

/** Whose clicks: a list of ads (one ad's series), or every ad of an advertiser (keyed by it). */
export type SpeedScope = { adIds: readonly string[] } | { advertiserId: string };

/** Sums of `scope` over `spans` (each [from, to), owned by the speed layer). */
export async function speedTotals(
  store: SpeedStore,
  scope: SpeedScope,
  spans: ReadonlyArray<readonly [number, number]>,
  bucketMs: number,
): Promise<SpeedTotals> {
  const parts = await Promise.all(
    spans.map(([from, to]) =>
      'advertiserId' in scope
        ? store.advertiserClickSums(scope.advertiserId, from, to, bucketMs)
        : store.clickSums(scope.adIds, from, to, bucketMs),
    ),
  );
  return { buckets: parts.flatMap((p) => p.buckets), ads: parts.flatMap((p) => p.ads) };
}

/**
 * The speed layer's part of an answer, or why it is missing (down, or slower than the timeout):
 * `reason` is for the client (no hosts, no broker replies), `detail` for the log.
 */
export type SpeedPart = { totals: SpeedTotals } | { totals: null; reason: string; detail: string };

/**
 * Provisional sums of `scope` over the hours of `range` that are not finalized (none: no call), per
 * minute for minute series and per hour otherwise. A failing or slow store yields the reason instead.
 */
export async function speedPart(
  store: SpeedStore,
  scope: SpeedScope,
  range: TimeRange,
  finalized: ReadonlySet<number>,
  timeoutMs: number,
): Promise<SpeedPart> {
  const spans = speedSpans(range, finalized);
  if (spans.length === 0 || ('adIds' in scope && scope.adIds.length === 0))
    return { totals: { buckets: [], ads: [] } };
  const bucketMs = range.granularity === 'minute' ? MINUTE_MS : HOUR_MS;
  try {
    const totals = speedTotals(store, scope, spans, bucketMs);
    return { totals: await withDeadline(totals, timeoutMs, `no answer within ${timeoutMs} ms`) };
  } catch (e) {
    return {
      totals: null,
      reason: 'the speed layer did not answer; provisional counts are missing',
      detail: (e as Error).message,
    };
  }
}
