// The Lambda read rule (DESIGN.md rule 6) as one pure function: every hour belongs to exactly one
// layer — the batch layer once the hour is finalized, the speed layer before — so a count is used
// only if its layer owns its hour, and the kept counts are summed into buckets. Sums are
// associative, so the same rule works whether a layer hands over minute rows or hour rollups.
import { bucketStarts, bucketOf, GRANULARITY_MS, hourOf, HOUR_MS, type Granularity } from '../common/time.js';

/** Clicks in the bucket starting at `start` (epoch ms, minute- or hour-aligned) from one layer. */
export interface Count {
  start: number;
  clicks: number;
}

export interface MergeQuery {
  /** Inclusive, aligned to `granularity`. */
  from: number;
  /** Exclusive, aligned to `granularity`. */
  to: number;
  granularity: Granularity;
}

export interface MergedPoint {
  start: number;
  clicks: number;
  /** Every minute of the bucket comes from a finalized hour. */
  final: boolean;
  /** Part of the bucket should have come from the speed layer, which did not answer. */
  unavailable?: true;
}

export interface MergedSeries {
  total: number;
  points: MergedPoint[];
}

/**
 * Merges batch and speed counts over [from, to). `finalizedHours` holds hour starts; `speed` is
 * null when the speed layer is down, in which case its buckets keep only their batch part and say so.
 * Counts outside the range, and counts from a layer that does not own their hour, are ignored.
 */
export function mergeClicks(
  q: MergeQuery,
  finalizedHours: ReadonlySet<number>,
  batch: Iterable<Count>,
  speed: Iterable<Count> | null,
): MergedSeries {
  const step = GRANULARITY_MS[q.granularity];
  const points = new Map<number, MergedPoint>();
  for (const start of bucketStarts(q.from, q.to, q.granularity)) {
    // A bucket is final when every hour it touches is: one hour for minute/hour buckets, 24 for a day.
    let final = true;
    for (let h = hourOf(start); h < start + step && final; h += HOUR_MS) final = finalizedHours.has(h);
    points.set(start, {
      start,
      clicks: 0,
      final,
      ...(!final && speed === null ? { unavailable: true } : {}),
    });
  }
  const add = (counts: Iterable<Count>, ownedByThisLayer: boolean): void => {
    for (const c of counts) {
      if (c.start < q.from || c.start >= q.to || finalizedHours.has(hourOf(c.start)) !== ownedByThisLayer)
        continue;
      points.get(bucketOf(c.start, q.granularity))!.clicks += c.clicks;
    }
  };
  add(batch, true);
  if (speed !== null) add(speed, false);
  const list = [...points.values()];
  return { total: list.reduce((sum, p) => sum + p.clicks, 0), points: list };
}

/** Which finalization a final point comes from. */
export interface Finalization {
  /** Changes whenever any hour of the point is finalized again: the sum of its hours' revisions. */
  revision: number;
  /** The latest finalization time among the point's hours (epoch ms). */
  finalizedAt: number;
}

/** The finalization of the bucket [start, start + stepMs), or undefined unless every hour of it is final. */
export function finalizationOf(
  start: number,
  stepMs: number,
  hours: ReadonlyMap<number, Finalization>,
): Finalization | undefined {
  let revision = 0;
  let finalizedAt = 0;
  for (let h = hourOf(start); h < start + stepMs; h += HOUR_MS) {
    const f = hours.get(h);
    if (!f) return undefined;
    revision += f.revision;
    finalizedAt = Math.max(finalizedAt, f.finalizedAt);
  }
  return { revision, finalizedAt };
}

/**
 * The spans of [from, to) the speed layer owns: maximal runs of hours that are not finalized, clipped
 * to the range. Usually one span (the newest hours), none for a fully finalized range.
 */
export function speedSpans(
  q: Pick<MergeQuery, 'from' | 'to'>,
  finalizedHours: ReadonlySet<number>,
): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  for (let h = hourOf(q.from); h < q.to; h += HOUR_MS) {
    if (finalizedHours.has(h)) continue;
    const start = Math.max(h, q.from);
    const end = Math.min(h + HOUR_MS, q.to);
    const last = spans[spans.length - 1];
    if (last && last[1] === start) last[1] = end;
    else spans.push([start, end]);
  }
  return spans;
}

/**
 * The `top` ads by clicks from per-ad sums of both layers, each already limited to the hours its layer
 * owns (batch: finalized hours; speed: `speedSpans`). Ads with no clicks are left out; ties go to the
 * smaller ad id so the list is stable.
 */
export function topAds(
  batchTotals: Iterable<{ adId: string; clicks: number }>,
  speedTotals: Iterable<{ adId: string; clicks: number }>,
  top: number,
): Array<{ adId: string; clicks: number }> {
  const byAd = new Map<string, number>();
  for (const list of [batchTotals, speedTotals])
    for (const r of list) byAd.set(r.adId, (byAd.get(r.adId) ?? 0) + r.clicks);
  return [...byAd]
    .filter(([, clicks]) => clicks > 0)
    .map(([adId, clicks]) => ({ adId, clicks }))
    .sort((a, b) => b.clicks - a.clicks || compareIds(a.adId, b.adId))
    .slice(0, top);
}

/** Decimal id strings in numeric order (shorter is smaller; ids have no leading zeros). */
const compareIds = (a: string, b: string): number => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
