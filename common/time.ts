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

// --- Batch windows: pure and deterministic (no Node APIs), so workflow code may import them. ---

/** Parses an hour-aligned ISO time; throws with the offending value otherwise. */
export function parseHour(iso: string): number {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) throw new RangeError(`not an ISO time: ${JSON.stringify(iso)}`);
  if (t % HOUR_MS !== 0) throw new RangeError(`not aligned to the hour: ${iso}`);
  return t;
}

/** Parses a calendar date `YYYY-MM-DD` as its UTC day start; throws for any other text or a day that does not exist. */
export function parseDate(date: string): number {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date))
    throw new RangeError(`not a YYYY-MM-DD date: ${JSON.stringify(date)}`);
  const t = Date.parse(`${date}T00:00:00Z`);
  if (!Number.isFinite(t) || dateOf(t) !== date) throw new RangeError(`${date} is not a calendar date`);
  return t;
}

export const dateOf = (dayStart: number): string => new Date(dayStart).toISOString().slice(0, 10);
export const hourIso = (hourStart: number): string => isoSeconds(hourStart);

/** Hour starts in [from, to). */
export const hoursIn = (from: number, to: number): number[] => bucketStarts(from, to, 'hour');

export const hoursOfDay = (dayStart: number): number[] => hoursIn(dayStart, dayStart + DAY_MS);

/** The hour a scheduled hourly run compacts: the whole hour before its nominal start time. */
export const hourBeforeNominal = (nominal: number): number => hourOf(nominal) - HOUR_MS;

/** The day a scheduled daily run compacts: the whole day before its nominal start time. */
export const dayBeforeNominal = (nominal: number): number => dayOf(nominal) - DAY_MS;

/** Checks a backfill range: both ends hour-aligned, from < to, at most `maxHours` hours. */
export function backfillHours(fromIso: string, toIso: string, maxHours = 24 * 92): number[] {
  const from = parseHour(fromIso);
  const to = parseHour(toIso);
  if (to <= from) throw new RangeError(`backfill range is empty: from ${fromIso} is not before to ${toIso}`);
  const hours = hoursIn(from, to);
  if (hours.length > maxHours) throw new RangeError(`backfill of ${hours.length} hours exceeds ${maxHours}`);
  return hours;
}
