// Window arithmetic for the batch workflows: pure and deterministic (no Node APIs), so workflow code
// may import it; the activities and operator tools use the same functions.
import { DAY_MS, HOUR_MS, isoSeconds } from '../common/time.js';

/** Parses an hour-aligned ISO time; throws with the offending value otherwise. */
export function parseHour(iso: string): number {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) throw new Error(`not an ISO time: ${JSON.stringify(iso)}`);
  if (t % HOUR_MS !== 0) throw new Error(`not aligned to the hour: ${iso}`);
  return t;
}

/** Parses `YYYY-MM-DD` as the UTC day start. */
export function parseDate(date: string): number {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new Error(`not a YYYY-MM-DD date: ${JSON.stringify(date)}`);
  const t = Date.parse(`${date}T00:00:00Z`);
  if (!Number.isFinite(t)) throw new Error(`not a date: ${date}`);
  return t;
}

export const dateOf = (dayStart: number): string => new Date(dayStart).toISOString().slice(0, 10);
export const hourIso = (hourStart: number): string => isoSeconds(hourStart);

/** Hour starts in [from, to). */
export function hoursIn(from: number, to: number): number[] {
  const hours: number[] = [];
  for (let h = from; h < to; h += HOUR_MS) hours.push(h);
  return hours;
}

export const hoursOfDay = (dayStart: number): number[] => hoursIn(dayStart, dayStart + DAY_MS);

/** The hour a scheduled hourly run compacts: the whole hour before its nominal start time. */
export const hourBeforeNominal = (nominal: number): number =>
  Math.floor(nominal / HOUR_MS) * HOUR_MS - HOUR_MS;

/** The day a scheduled daily run compacts: the whole day before its nominal start time. */
export const dayBeforeNominal = (nominal: number): number => Math.floor(nominal / DAY_MS) * DAY_MS - DAY_MS;

/** Workflow ids derived from the window, so a second start of the same window is not a second run. */
export const compactHourId = (hourStart: number): string => `compact-hour-${hourIso(hourStart)}`;
export const compactDayId = (date: string): string => `compact-day-${date}`;
export const backfillId = (from: number, to: number): string => `backfill-${hourIso(from)}-${hourIso(to)}`;

/** Checks a backfill range: both ends hour-aligned, from < to, at most `maxHours` hours. */
export function backfillHours(fromIso: string, toIso: string, maxHours = 24 * 92): number[] {
  const from = parseHour(fromIso);
  const to = parseHour(toIso);
  if (to <= from) throw new Error(`backfill range is empty: from ${fromIso} is not before to ${toIso}`);
  const hours = hoursIn(from, to);
  if (hours.length > maxHours) throw new Error(`backfill of ${hours.length} hours exceeds ${maxHours}`);
  return hours;
}
