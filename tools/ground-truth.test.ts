import { describe, expect, it } from 'vitest';
import { checkImpression, signImpression } from '../ingest/impression.js';
import {
  diffCounts,
  nearMinuteBoundary,
  recordValidClick,
  tamperedSignature,
  totalOf,
  type GroundTruth,
} from './ground-truth.js';

describe('ground truth', () => {
  it('records clicks in the UTC minute of their time', () => {
    const counts: GroundTruth['counts'] = {};
    recordValidClick(counts, '7', Date.UTC(2026, 10, 27, 10, 0, 59, 999));
    recordValidClick(counts, '7', Date.UTC(2026, 10, 27, 10, 1, 0, 0));
    recordValidClick(counts, '7', Date.UTC(2026, 10, 27, 10, 1, 30));
    expect(counts).toEqual({ '7': { '2026-11-27T10:00:00Z': 1, '2026-11-27T10:01:00Z': 2 } });
    expect(totalOf(counts)).toBe(3);
  });

  it('reports missing, extra and different counts, and nothing when equal', () => {
    const truth = { a: { m1: 2, m2: 1 }, b: { m1: 1 } };
    expect(diffCounts(truth, { a: { m1: 2, m2: 1 }, b: { m1: 1, m9: 0 } })).toEqual([]);
    expect(diffCounts(truth, { a: { m1: 3 }, c: { m1: 1 } })).toEqual([
      { adId: 'a', minute: 'm1', expected: 2, reported: 3 },
      { adId: 'a', minute: 'm2', expected: 1, reported: 0 },
      { adId: 'b', minute: 'm1', expected: 1, reported: 0 },
      { adId: 'c', minute: 'm1', expected: 0, reported: 1 },
    ]);
  });

  it('keeps clear of minute boundaries on both sides', () => {
    const m = Date.UTC(2026, 10, 27, 10, 5);
    expect(nearMinuteBoundary(m + 10, 150)).toBe(true);
    expect(nearMinuteBoundary(m - 10, 150)).toBe(true);
    expect(nearMinuteBoundary(m + 30_000, 150)).toBe(false);
  });
});

describe('tampered signatures', () => {
  const secret = 'test-secret-0123456789';
  const exp = Date.UTC(2026, 10, 28, 12);
  const now = exp - 60_000;
  /** The first impression id (a deterministic sequence) whose signature matches `pattern`. */
  function impressionWhoseSig(pattern: RegExp): { imp: string; sig: string } {
    for (let i = 0; i < 200_000; i++) {
      const imp = `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
      const sig = signImpression(secret, '42', imp, exp);
      if (pattern.test(sig)) return { imp, sig };
    }
    throw new Error(`no signature matching ${pattern}`);
  }

  it('the click service rejects every tampered signature, whatever characters it starts or ends with', () => {
    // Ending in "AA": overwriting the last two characters with "AA" would have left it valid.
    for (const pattern of [/AA$/, /^A/, /^B/, /^[^AB]/]) {
      const { imp, sig } = impressionWhoseSig(pattern);
      expect(checkImpression(secret, '42', imp, String(exp), sig, now)).toBe('ok');
      const bad = tamperedSignature(sig);
      expect(bad).not.toBe(sig);
      expect(bad).toHaveLength(sig.length);
      expect(bad).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(checkImpression(secret, '42', imp, String(exp), bad, now)).toBe('bad_signature');
    }
  });
});
