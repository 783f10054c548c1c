import { describe, expect, it } from 'vitest';
import { diffTotals } from './reconciliation.js';

describe('diffTotals', () => {
  it('lists ads whose layers disagree, biggest gap first, missing side = 0', () => {
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
    expect(d.differences).toEqual([
      { adId: '3', batch: 7, speed: 0, difference: -7 },
      { adId: '2', batch: 5, speed: 8, difference: 3 },
      { adId: '4', batch: 0, speed: 1, difference: 1 },
    ]);
  });
});
