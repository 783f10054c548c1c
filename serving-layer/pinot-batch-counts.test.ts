import { describe, expect, it } from 'vitest';
import { DAY_MS, HOUR_MS } from '../common/time.js';
import { daySeriesOfHours } from './pinot-batch-counts.js';

describe('daySeriesOfHours', () => {
  const day = Date.UTC(2000, 0, 1);
  const hoursOf = (d: number, n = 24): number[] => Array.from({ length: n }, (_, i) => d + i * HOUR_MS);

  it('sums a day whose 24 hours are finalized into one point at the day start', () => {
    const finalized = new Set(hoursOf(day));
    const counts = [
      { start: day, clicks: 2 },
      { start: day + 5 * HOUR_MS, clicks: 3 },
      { start: day + 23 * HOUR_MS, clicks: 4 },
    ];
    expect(daySeriesOfHours(counts, finalized)).toEqual([{ start: day, clicks: 9 }]);
  });

  it("keeps a partly finalized day's finalized hours apart and drops the others", () => {
    const next = day + DAY_MS;
    const finalized = new Set([...hoursOf(day), ...hoursOf(next, 10)]);
    const counts = [
      { start: day + HOUR_MS, clicks: 1 },
      { start: next + 2 * HOUR_MS, clicks: 5 },
      { start: next + 12 * HOUR_MS, clicks: 7 },
    ];
    expect(daySeriesOfHours(counts, finalized)).toEqual([
      { start: day, clicks: 1 },
      { start: next + 2 * HOUR_MS, clicks: 5 },
    ]);
  });
});
