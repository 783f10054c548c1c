import { describe, expect, it } from 'vitest';
import { diffHours, diffTotals } from './reconciliation.js';

describe('diffTotals', () => {
  it('sorts each disagreeing ad into one list: both layers, only batch, only speed', () => {
    const batch = new Map([
      ['1', 10],
      ['2', 5],
      ['3', 7],
    ]);
    const speed = new Map([
      ['1', 10],
      ['2', 8],
      ['4', 1],
    ]);
    const d = diffTotals(batch, speed);
    expect(d.batchTotal).toBe(22);
    expect(d.speedTotal).toBe(19);
    expect(d.adsCompared).toBe(4);
    expect(d.differences).toEqual([{ adId: '2', batch: 5, speed: 8, difference: 3 }]);
    expect(d.onlyInBatch).toEqual([{ adId: '3', batch: 7, speed: 0, difference: -7 }]);
    expect(d.onlyInSpeed).toEqual([{ adId: '4', batch: 0, speed: 1, difference: 1 }]);
  });
});

describe('diffHours', () => {
  it('lists the hours whose totals disagree, in time order, a missing side counting as 0', () => {
    const H = Date.UTC(2026, 10, 27, 10);
    const batch = new Map([
      [H + 3_600_000, 5],
      [H, 4],
    ]);
    const speed = new Map([
      [H, 4],
      [H + 3_600_000, 6],
      [H + 7_200_000, 2],
    ]);
    expect(diffHours(batch, speed)).toEqual([
      { hour: '2026-11-27T11:00:00Z', batch: 5, speed: 6, difference: 1 },
      { hour: '2026-11-27T12:00:00Z', batch: 0, speed: 2, difference: 2 },
    ]);
  });
});
