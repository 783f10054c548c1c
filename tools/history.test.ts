import { describe, expect, it } from 'vitest';
import { HOUR_MS, minuteOf } from '../common/time.js';
import { generateHistory, truthKey } from './history.js';

describe('generateHistory', () => {
  it('the truth is the first valid click of each impression, per ad and minute', () => {
    const from = Date.UTC(2001, 0, 1, 5);
    const h = generateHistory({ from, hours: 2, impressions: 2000, adBase: 900n, ads: 20, seed: 7 });
    const first = new Map<string, { adId: string; ts: number }>();
    for (const e of h.events) {
      if (e.status !== 'valid') continue;
      const f = first.get(e.eventId);
      if (!f || e.ts < f.ts) first.set(e.eventId, { adId: e.adId, ts: e.ts });
    }
    const expected = new Map<string, number>();
    for (const { adId, ts } of first.values()) {
      expected.set(truthKey(adId, minuteOf(ts)), (expected.get(truthKey(adId, minuteOf(ts))) ?? 0) + 1);
    }
    expect(h.truth).toEqual(expected);
    expect(first.size).toBe(2000);
    // Some repeats cross into a later hour, the case the batch layer must dedup.
    const crossing = h.events.filter((e) => e.status === 'valid' && e.ts >= from + 2 * HOUR_MS);
    expect(crossing.length).toBeGreaterThan(0);
  });
});
