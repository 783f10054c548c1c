import { describe, expect, it } from 'vitest';
import { DAY_MS, HOUR_MS } from '../common/time.js';
import { BadRequest } from '../common/http-errors.js';
import { parseDateParam, parseRange, parseTime, parseTop } from './query.js';

const NOW = Date.UTC(2026, 10, 27, 10, 17, 30);
const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    if (e instanceof BadRequest) return e.code;
    throw e;
  }
  return undefined;
};

describe('parseRange', () => {
  it('defaults to the span ending with the running bucket', () => {
    expect(parseRange({ granularity: 'hour' }, NOW)).toEqual({
      granularity: 'hour',
      from: Date.UTC(2026, 10, 26, 11),
      to: Date.UTC(2026, 10, 27, 11),
    });
    expect(parseRange({}, NOW)).toMatchObject({ granularity: 'minute', to: Date.UTC(2026, 10, 27, 10, 18) });
    const day = parseRange({ granularity: 'day' }, NOW);
    expect(day.to - day.from).toBe(30 * DAY_MS);
  });

  it('takes the other bound from the default span when only one is given', () => {
    const r = parseRange({ granularity: 'hour', to: '2026-11-20T00:00:00Z' }, NOW);
    expect(r.from).toBe(Date.UTC(2026, 10, 19));
  });

  it('rejects unaligned, reversed, too long ranges and unknown granularities', () => {
    expect(codeOf(() => parseRange({ granularity: 'hour', from: '2026-11-27T09:30:00Z' }, NOW))).toBe(
      'unaligned_time',
    );
    expect(codeOf(() => parseRange({ from: '2026-11-27T10:00:00Z', to: '2026-11-27T10:00:00Z' }, NOW))).toBe(
      'invalid_range',
    );
    const to = Date.UTC(2026, 10, 27);
    expect(codeOf(() => parseRange({ from: String(to - 7 * DAY_MS), to: String(to) }, NOW))).toBeUndefined();
    expect(codeOf(() => parseRange({ from: String(to - 7 * DAY_MS - 60_000), to: String(to) }, NOW))).toBe(
      'range_too_long',
    );
    expect(
      codeOf(() => parseRange({ granularity: 'hour', from: String(to - 93 * DAY_MS), to: String(to) }, NOW)),
    ).toBe('range_too_long');
    expect(codeOf(() => parseRange({ granularity: 'week' }, NOW))).toBe('invalid_granularity');
  });
});

describe('parseTime', () => {
  it('reads ISO-8601 with a zone and epoch milliseconds; rejects the rest', () => {
    expect(parseTime('2026-11-27T10:00:00Z', 'from')).toBe(Date.UTC(2026, 10, 27, 10));
    expect(parseTime('2026-11-27T11:00:00+01:00', 'from')).toBe(Date.UTC(2026, 10, 27, 10));
    expect(parseTime(String(HOUR_MS), 'from')).toBe(HOUR_MS);
    expect(parseTime(undefined, 'from')).toBeUndefined();
    for (const bad of ['2026-11-27T10:00:00', 'tomorrow', '2026-13-01T00:00:00Z', ['1', '2']])
      expect(codeOf(() => parseTime(bad, 'from'))).toBe('invalid_time');
  });
});

describe('parseTop and parseDateParam', () => {
  it('top is 1..1000, default 10', () => {
    expect(parseTop(undefined)).toBe(10);
    expect(parseTop('1000')).toBe(1000);
    for (const bad of ['0', '1001', '-1', '2.5', 'x'])
      expect(codeOf(() => parseTop(bad))).toBe('invalid_top');
  });

  it('a date must exist on the calendar', () => {
    expect(parseDateParam('2024-02-29')).toBe('2024-02-29');
    for (const bad of ['2025-02-29', '2026-1-01', undefined])
      expect(codeOf(() => parseDateParam(bad))).toBe('invalid_date');
  });
});
