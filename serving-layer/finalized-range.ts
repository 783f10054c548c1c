// What both authoritative stores (batch-store.ts on PostgreSQL, pinot-batch-counts.ts on Pinot) read
// for a top-ads sum over a range: which ads (the scope), and which parts of the range are finalized.
// Pure; one rule, so the two stores cannot count a different range.
import { HOUR_MS, hourOf } from '../common/time.js';

/** Which ads a per-ad sum covers: listed ones, or every ad of an advertiser (no id list in the query). */
export type AdScope = readonly string[] | { advertiserId: string };

/** True for an empty list of ads (an advertiser's scope is never empty here: the store finds out). */
export const isEmptyScope = (scope: AdScope): boolean => !('advertiserId' in scope) && scope.length === 0;

/** The finalized parts of a range: whole hours, and minute spans [from, to) at the range's ends. */
export interface FinalizedSpans {
  /** Finalized hour starts whose whole hour lies inside the range (read from hour rows). */
  wholeHours: number[];
  /** The partial hours at both ends, only where that hour is finalized (at most two; minute rows). */
  edges: Array<[number, number]>;
}

/** The finalized parts of [from, to) (minute-aligned), given the finalized hour starts. */
export function finalizedSpans(from: number, to: number, finalized: ReadonlySet<number>): FinalizedSpans {
  const wholeFrom = Math.ceil(from / HOUR_MS) * HOUR_MS;
  const wholeTo = Math.max(wholeFrom, hourOf(to));
  const wholeHours = [...finalized].filter((h) => h >= wholeFrom && h < wholeTo);
  const edges: Array<[number, number]> = [];
  if (from < wholeFrom && finalized.has(hourOf(from))) edges.push([from, Math.min(wholeFrom, to)]);
  if (to > wholeTo && finalized.has(wholeTo)) edges.push([wholeTo, to]);
  return { wholeHours, edges };
}
