// Where the batch layer keeps things in S3 and how hour windows are named: pure functions, no I/O.
// Raw click files:   <prefix>raw/clicks/date=YYYY-MM-DD/hour=HH/p<partition>-<firstOffset>-<lastOffset>.parquet
// Seen-ids indexes:  <prefix>index/seen/date=YYYY-MM-DD/hour=HH/<manifest hash>.parquet
import { createHash } from 'node:crypto';
import { hourPartition } from '../common/time.js';

/** `prefix` is '' in production; tests pass a unique one (it must end with '/'). */
export const rawHourPrefix = (prefix: string, hourStart: number): string =>
  `${prefix}raw/clicks/${hourPartition(hourStart)}/`;

export const rawFileKey = (
  prefix: string,
  hourStart: number,
  partition: number,
  firstOffset: string,
  lastOffset: string,
): string => `${rawHourPrefix(prefix, hourStart)}p${partition}-${firstOffset}-${lastOffset}.parquet`;

export const seenIndexHourPrefix = (prefix: string, hourStart: number): string =>
  `${prefix}index/seen/${hourPartition(hourStart)}/`;

/**
 * The index of an hour is named after the exact set of raw files it was built from, so a late file
 * landing in an already-indexed hour changes the name and the stale index is simply not found.
 */
export function manifestHash(rawKeys: readonly string[]): string {
  const h = createHash('sha1');
  for (const k of [...rawKeys].sort()) h.update(k).update('\n');
  return h.digest('hex').slice(0, 16);
}

export const seenIndexKey = (prefix: string, hourStart: number, rawKeys: readonly string[]): string =>
  `${seenIndexHourPrefix(prefix, hourStart)}${manifestHash(rawKeys)}.parquet`;
