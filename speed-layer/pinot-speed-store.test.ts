import { describe, expect, it } from 'vitest';
import { totalsOfPairs } from './pinot-speed-store.js';

const M = 60_000;
const H = 60 * M;

describe('totalsOfPairs', () => {
  const rows = [
    ['7', 2 * H + 3 * M, 2],
    ['8', 2 * H + 3 * M, 1],
    ['7', 2 * H + 4 * M, 5],
    ['9', 3 * H, 0],
    ['8', 3 * H + M, 4],
  ];

  it('sums (ad, minute) rows per minute bucket and per ad, leaving out zero sums', () => {
    const t = totalsOfPairs(rows, M);
    expect(t.buckets).toEqual([
      { start: 2 * H + 3 * M, clicks: 3 },
      { start: 2 * H + 4 * M, clicks: 5 },
      { start: 3 * H + M, clicks: 4 },
    ]);
    expect(t.ads).toEqual([
      { adId: '7', clicks: 7 },
      { adId: '8', clicks: 5 },
    ]);
  });

  it('folds minutes into hour buckets', () => {
    expect(totalsOfPairs(rows, H).buckets).toEqual([
      { start: 2 * H, clicks: 8 },
      { start: 3 * H, clicks: 4 },
    ]);
    expect(totalsOfPairs([], H)).toEqual({ buckets: [], ads: [] });
  });
});
