import { describe, expect, it } from 'vitest';
import { HOUR_MS, minuteOf } from '../common/time.js';
import { diurnalRate, expectedDistinct, generateHistory, truthKey, zipfBlocks } from './history.js';

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

describe('volume at scale', () => {
  it('a diurnal day with a 10,000/s peak is ~100M clicks', () => {
    let day = 0;
    for (let h = 0; h < 24; h++) day += diurnalRate(h, 10_000) * 3600;
    expect(day).toBeGreaterThan(100e6);
    expect(day).toBeLessThan(110e6);
    expect(diurnalRate(20, 10_000)).toBeGreaterThan(8_000);
  });

  it('the Zipf model gives the target volume: ~220k distinct (ad, minute) rows a minute at 10k/s over 10M ads', () => {
    const blocks = zipfBlocks(10_000_000, 1);
    expect(blocks.reduce((s, b) => s + b.count * b.p, 0)).toBeCloseTo(1, 9);
    expect(blocks.reduce((s, b) => s + b.count, 0)).toBe(10_000_000);
    const perMinute = expectedDistinct(blocks, 600_000);
    expect(perMinute).toBeGreaterThan(215_000);
    expect(perMinute).toBeLessThan(230_000);
    expect(expectedDistinct(blocks, 36_000_000) / 1e6).toBeCloseTo(4.5, 0);
  });
});
