import { describe, expect, it } from 'vitest';
import { adjustmentRows, hourSegmentName } from './pinot-offline.js';

describe('adjustmentRows (what a re-finalization in Pinot changed)', () => {
  it('keeps only the keys whose clicks differ, a missing side counting 0, in id order', () => {
    const before = new Map([
      ['10', 5],
      ['9', 2],
      ['7', 1],
    ]);
    const after = new Map([
      ['10', 5],
      ['9', 3],
      ['100', 4],
    ]);
    expect(adjustmentRows(before, after)).toEqual([
      { id: '7', clicksBefore: 1, clicksAfter: 0 },
      { id: '9', clicksBefore: 2, clicksAfter: 3 },
      { id: '100', clicksBefore: 0, clicksAfter: 4 },
    ]);
  });

  it('is empty when nothing changed', () => {
    expect(adjustmentRows(new Map([['1', 2]]), new Map([['1', 2]]))).toEqual([]);
  });
});

describe('hourSegmentName', () => {
  it('names a segment after its table and UTC hour, so a re-finalization replaces it', () => {
    expect(hourSegmentName('t', Date.UTC(2000, 0, 1, 19, 0))).toBe('t_2000-01-01T19');
  });
});
