import { describe, expect, it } from 'vitest';
import { checkImpression } from '../ingest/impression.js';
import { clickPaths, scatter, ZipfSampler } from './zipf.js';

/** A small deterministic generator (mulberry32), so the shares below are stable. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('ZipfSampler', () => {
  it('draws rank k with probability 1/(k·H(n)), also beyond the exact table', () => {
    const n = 10_000_000;
    const z = new ZipfSampler(n, seeded(1));
    const draws = 400_000;
    let one = 0;
    let ten = 0;
    let beyondTable = 0;
    let max = 0;
    for (let i = 0; i < draws; i++) {
      const k = z.next();
      if (k === 1) one++;
      if (k === 10) ten++;
      if (k > 1 << 20) beyondTable++;
      max = Math.max(max, k);
    }
    const h = Math.log(n) + 0.5772156649;
    expect(one / draws).toBeCloseTo(1 / h, 2);
    expect(ten / draws).toBeCloseTo(1 / (10 * h), 2);
    // P(k > 2^20) = (H(n) − H(2^20)) / H(n) = ln(n / 2^20) / H(n) ≈ 0.136
    expect(beyondTable / draws).toBeCloseTo(Math.log(n / (1 << 20)) / h, 2);
    expect(max).toBeLessThanOrEqual(n);
  });
});

describe('scatter', () => {
  it('is a bijection of [0, n)', () => {
    for (const n of [1, 2, 10, 97, 1000]) {
      const f = scatter(n);
      const seen = new Set(Array.from({ length: n }, (_, i) => f(i)));
      expect(seen.size).toBe(n);
      expect(Math.max(...seen)).toBe(n - 1);
    }
  });
});

describe('clickPaths', () => {
  it('offers the issue mix: 10 % duplicates, 3 % bad signatures, 1 % expired, each judged as labelled', () => {
    const secret = 'bench-secret-0123456789';
    const now = 1_800_000_000_000;
    const source = clickPaths({
      adIdAt: (i) => String(1000 + i),
      catalogueSize: 5000,
      secret,
      now,
      ttlSeconds: 3600,
      random: seeded(7),
    });
    const counts = { valid: 0, duplicate: 0, bad_signature: 0, expired: 0 };
    const firstSeen = new Set<string>();
    const total = 50_000;
    for (let i = 0; i < total; i++) {
      const { path, kind } = source.next();
      counts[kind]++;
      const url = new URL(path, 'http://x');
      const adId = url.pathname.slice(3);
      const q = url.searchParams;
      const check = checkImpression(secret, adId, q.get('imp'), q.get('exp'), q.get('sig'), now);
      if (kind === 'bad_signature') expect(check).toBe('bad_signature');
      else if (kind === 'expired') expect(check).toBe('expired');
      else expect(check).toBe('ok');
      if (kind === 'valid') {
        expect(firstSeen.has(path)).toBe(false);
        firstSeen.add(path);
      }
      if (kind === 'duplicate') expect(firstSeen.has(path)).toBe(true);
    }
    expect(counts.duplicate / total).toBeCloseTo(0.1, 2);
    expect(counts.bad_signature / total).toBeCloseTo(0.03, 2);
    expect(counts.expired / total).toBeCloseTo(0.01, 2);
    // 50,000 HMACs: about 2 s on a quiet core, past vitest's 5 s default while the stack's JVMs compete.
  }, 30_000);
});
