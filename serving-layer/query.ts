// Parsing and validation of the metrics API's query parameters (API.md, Metrics): ids, times,
// granularity, alignment, range limits and their defaults. Pure; errors carry the 400 body to send.
// The zod schemas say what each query string may hold (they validate every request and make the
// OpenAPI document); the functions below turn the checked strings into ranges and apply the rules
// that involve several fields or the clock.
import { z } from 'zod';
import { BadRequest } from '../common/http-errors.js';
import {
  DAY_MS,
  GRANULARITY_MS,
  HOUR_MS,
  bucketOf,
  dateOf,
  isAligned,
  parseDate,
  type Granularity,
} from '../common/time.js';
import { ID_PATTERN, isId } from '../common/ids.js';

const TIME_TEXT = /^(\d{1,15}|\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:?\d{2}))$/;
const time = z
  .union([z.literal(''), z.string().regex(TIME_TEXT)], {
    error: 'must be an ISO-8601 UTC time like 2026-11-27T10:00:00Z, or epoch milliseconds (once)',
  })
  .describe(
    'ISO-8601 UTC time (e.g. 2026-11-27T10:00:00Z) or epoch milliseconds, aligned to the granularity',
  );
const id = z.string().regex(ID_PATTERN, 'must be a decimal id (1 to 18 digits, no leading zero)');

/** Query of GET /v1/ads/:adId/clicks. */
export const clicksQuery = z.object({
  from: time.optional(),
  to: time.optional(),
  granularity: z
    .enum(['minute', 'hour', 'day'], { error: 'granularity must be one of minute, hour, day' })
    .or(z.literal(''))
    .optional(),
});
/** Query of GET /v1/advertisers/me/clicks. */
export const advertiserClicksQuery = clicksQuery.extend({
  top: z
    .string()
    .regex(/^(?:[1-9][0-9]{0,2}|1000)$/, 'top must be an integer from 1 to 1000')
    .or(z.literal(''))
    .optional()
    .describe('how many top ads (1 to 1000, default 10)'),
  advertiserId: id.optional().describe('with the admin key: the advertiser'),
});
export const adPathParams = z.object({ adId: id });
/** Query of GET /v1/admin/hours. */
export const hoursQuery = z.object({ from: time.optional(), to: time.optional() });
// A calendar date from 1970 on, leap days included (Gregorian: every 4th year, centuries only every
// 400th); PostgreSQL has no year 0.
const YEAR = '(?:19[7-9][0-9]|[2-9][0-9]{3})';
const LEAP_YEAR =
  '(?:19(?:7[26]|8[048]|9[26])|[2-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[3579][26])00)';
const CALENDAR_DATE = new RegExp(
  `^(?:${YEAR}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))|${LEAP_YEAR}-02-29)$`,
);
/** Query of GET /v1/admin/reconciliation. */
export const reconciliationQuery = z.object({
  date: z
    .string({ error: 'date must be given as YYYY-MM-DD' })
    .regex(CALENDAR_DATE, 'date must be a calendar date YYYY-MM-DD'),
});
/** Body of POST /v1/admin/backfills. */
export const backfillBody = z.object({
  from: z.union([z.string(), z.number()]).describe('hour-aligned ISO-8601 UTC time or epoch ms'),
  to: z.union([z.string(), z.number()]).describe('hour-aligned ISO-8601 UTC time or epoch ms'),
});
/** The 400 code of a bad query field. */
export const QUERY_CODES: Record<string, string> = {
  from: 'invalid_time',
  to: 'invalid_time',
  granularity: 'invalid_granularity',
  top: 'invalid_top',
  advertiserId: 'invalid_advertiser_id',
  adId: 'invalid_ad_id',
  date: 'invalid_date',
};

export function parseId(value: unknown, what: string): string {
  if (!isId(value))
    throw new BadRequest(`invalid_${what}`, `${what} must be a decimal id (1 to 18 digits, no leading zero)`);
  return value;
}

/** An ISO-8601 string (with a zone; `Z` recommended) or epoch milliseconds. */
export function parseTime(value: unknown, name: string): number | undefined {
  if (value === undefined || value === '') return undefined;
  if (typeof value !== 'string') throw new BadRequest('invalid_time', `${name} must appear once`);
  const ms = /^\d{1,15}$/.test(value)
    ? Number(value)
    : /^\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:?\d{2})$/.test(value)
      ? Date.parse(value)
      : NaN;
  if (!Number.isFinite(ms))
    throw new BadRequest(
      'invalid_time',
      `${name} must be an ISO-8601 UTC time like 2026-11-27T10:00:00Z, or epoch milliseconds`,
    );
  return ms;
}

export function parseGranularity(value: unknown): Granularity {
  if (value === undefined || value === '') return 'minute';
  if (value === 'minute' || value === 'hour' || value === 'day') return value;
  throw new BadRequest('invalid_granularity', 'granularity must be one of minute, hour, day');
}

/** How far back `from` goes when omitted, and the longest range allowed, per granularity. */
export const DEFAULT_SPAN: Record<Granularity, number> = { minute: HOUR_MS, hour: DAY_MS, day: 30 * DAY_MS };
export const MAX_SPAN: Record<Granularity, number> = {
  minute: 7 * DAY_MS,
  hour: 92 * DAY_MS,
  day: (3 * 365 + 1) * DAY_MS,
};
const MAX_SPAN_TEXT: Record<Granularity, string> = { minute: '7 days', hour: '92 days', day: '3 years' };

export interface TimeRange {
  from: number;
  to: number;
  granularity: Granularity;
}

/**
 * from/to/granularity of a metrics request. `to` defaults to the end of the bucket holding `now`
 * (so the running bucket is included), `from` to `to` minus the granularity's default span.
 */
export function parseRange(q: Record<string, unknown>, now: number): TimeRange {
  const granularity = parseGranularity(q.granularity);
  return checkRange(
    parseTime(q.from, 'from'),
    parseTime(q.to, 'to'),
    granularity,
    now,
    MAX_SPAN[granularity],
  );
}

export function checkRange(
  fromIn: number | undefined,
  toIn: number | undefined,
  granularity: Granularity,
  now: number,
  maxSpan: number,
  maxSpanText = MAX_SPAN_TEXT[granularity],
): TimeRange {
  const step = GRANULARITY_MS[granularity];
  const to = toIn ?? bucketOf(now, granularity) + step;
  const from = fromIn ?? to - DEFAULT_SPAN[granularity];
  for (const [name, t] of [
    ['from', from],
    ['to', to],
  ] as const)
    if (!isAligned(t, granularity))
      throw new BadRequest('unaligned_time', `${name} must be aligned to the ${granularity} (UTC)`);
  if (from >= to) throw new BadRequest('invalid_range', 'from must be before to');
  if (to - from > maxSpan)
    throw new BadRequest(
      'range_too_long',
      `at ${granularity} granularity a range spans at most ${maxSpanText}`,
    );
  return { from, to, granularity };
}

export function parseTop(value: unknown): number {
  if (value === undefined || value === '') return 10;
  if (typeof value !== 'string' || !/^\d{1,4}$/.test(value) || Number(value) < 1 || Number(value) > 1000)
    throw new BadRequest('invalid_top', 'top must be an integer from 1 to 1000');
  return Number(value);
}

/** The `date` query parameter: a calendar date `YYYY-MM-DD` that exists. */
export function parseDateParam(value: unknown): string {
  try {
    if (typeof value !== 'string') throw new RangeError('date must be given as YYYY-MM-DD');
    return dateOf(parseDate(value));
  } catch (e) {
    throw new BadRequest('invalid_date', (e as Error).message);
  }
}
