import { describe, expect, it } from 'vitest';
import { backfillHours, dayBeforeNominal, hourBeforeNominal, parseDate, parseHour } from './time.js';
import { backfillId, compactHourId } from './workflow-ids.js';

describe('batch windows', () => {
  it('parses hour-aligned ISO times and rejects others', () => {
    expect(parseHour('2026-11-27T10:00:00Z')).toBe(Date.UTC(2026, 10, 27, 10));
    expect(() => parseHour('2026-11-27T10:05:00Z')).toThrow(/aligned/);
    expect(() => parseHour('yesterday')).toThrow(/ISO/);
    expect(parseDate('2026-11-27')).toBe(Date.UTC(2026, 10, 27));
    expect(() => parseDate('2026-11-27T00:00:00Z')).toThrow(/YYYY-MM-DD/);
    expect(() => parseDate('2026-02-30')).toThrow(/calendar/);
  });

  it('derives the compacted window from a schedule nominal time', () => {
    expect(hourBeforeNominal(Date.UTC(2026, 10, 27, 11, 5))).toBe(Date.UTC(2026, 10, 27, 10));
    expect(dayBeforeNominal(Date.UTC(2026, 10, 28, 0, 30))).toBe(Date.UTC(2026, 10, 27));
  });

  it('names workflows after their window and lists backfill hours, to exclusive', () => {
    expect(compactHourId(Date.UTC(2026, 10, 27, 10))).toBe('compact-hour-2026-11-27T10:00:00Z');
    expect(backfillId(Date.UTC(2026, 10, 27, 10), Date.UTC(2026, 10, 27, 13))).toBe(
      'backfill-2026-11-27T10:00:00Z-2026-11-27T13:00:00Z',
    );
    expect(backfillHours('2026-11-27T10:00:00Z', '2026-11-27T13:00:00Z')).toHaveLength(3);
    expect(() => backfillHours('2026-11-27T10:00:00Z', '2026-11-27T10:00:00Z')).toThrow(/empty/);
  });
});
