import { describe, expect, it } from 'vitest';
import { topCandidates } from './ad-totals.js';
import { topAds } from './merge.js';

describe('topCandidates', () => {
  it('keeps exactly the top list topAds would make from all batch totals', () => {
    let seed = 7;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const n = 50 + rand(400);
      const batch = Array.from({ length: n }, (_, i) => ({ adId: String(1 + i * 3), clicks: rand(20) }));
      const speed = Array.from({ length: rand(30) }, () => ({
        adId: String(1 + rand(n + 40) * 3),
        clicks: 1 + rand(30),
      }));
      const top = 1 + rand(12);
      const candidates = topCandidates(batch, speed, top);
      expect(topAds(candidates, speed, top)).toEqual(topAds(batch, speed, top));
      expect(candidates.length).toBeLessThanOrEqual(Math.max(top * 4, top + speed.length));
    }
  });
});
