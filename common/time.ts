// UTC time buckets. A bucket is [start, start + granularity); every timestamp is epoch ms.
export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

export type Granularity = 'minute' | 'hour' | 'day';
export const GRANULARITY_MS: Record<Granularity, number> = { minute: MINUTE_MS, hour: HOUR_MS, day: DAY_MS };

export const floorTo = (ts: number, stepMs: number): number => Math.floor(ts / stepMs) * stepMs;
export const minuteOf = (ts: number): number => floorTo(ts, MINUTE_MS);
export const hourOf = (ts: number): number => floorTo(ts, HOUR_MS);
export const dayOf = (ts: number): number => floorTo(ts, DAY_MS);
export const bucketOf = (ts: number, g: Granularity): number => floorTo(ts, GRANULARITY_MS[g]);
export const isAligned = (ts: number, g: Granularity): boolean => ts % GRANULARITY_MS[g] === 0;

/** Starts of the buckets in [from, to), in order. */
export function bucketStarts(from: number, to: number, g: Granularity): number[] {
  const step = GRANULARITY_MS[g];
  const starts: number[] = [];
  for (let t = bucketOf(from, g); t < to; t += step) starts.push(t);
  return starts;
}

/** `2026-11-27T10:00:00Z`: ISO-8601 UTC without milliseconds. */
export const isoSeconds = (ts: number): string => new Date(ts).toISOString().replace(/\.\d{3}Z$/, 'Z');

/** S3 partition path of an hour: `date=YYYY-MM-DD/hour=HH`. */
export function hourPartition(hourStart: number): string {
  const iso = new Date(hourStart).toISOString();
  return `date=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}`;
}
