import { describe, expect, it } from 'vitest';
import { finalizedSpans, isEmptyScope } from './finalized-range.js';

const H = 3_600_000;
const M = 60_000;
const day = Date.UTC(2026, 0, 5);
const at = (hour: number, minute = 0): number => day + hour * H + minute * M;

describe('finalizedSpans (the finalized parts of a top-ads range, shared by both stores)', () => {
  it('splits a range into whole finalized hours and its two finalized partial ends', () => {
    const finalized = new Set([at(9), at(10), at(11), at(12), at(13), at(20)]);
    expect(finalizedSpans(at(10, 30), at(13, 15), finalized)).toEqual({
      wholeHours: [at(11), at(12)],
      edges: [
        [at(10, 30), at(11)],
        [at(13), at(13, 15)],
      ],
    });
  });

  it('leaves out hours and ends that are not finalized', () => {
    const finalized = new Set([at(11), at(13)]);
    expect(finalizedSpans(at(10, 30), at(13, 15), finalized)).toEqual({
      wholeHours: [at(11)],
      edges: [[at(13), at(13, 15)]],
    });
  });

  it('reads a range inside one hour as one edge, and an hour-aligned range as whole hours only', () => {
    const finalized = new Set([at(10), at(11)]);
    expect(finalizedSpans(at(10, 15), at(10, 45), finalized)).toEqual({
      wholeHours: [],
      edges: [[at(10, 15), at(10, 45)]],
    });
    expect(finalizedSpans(at(10), at(12), finalized)).toEqual({ wholeHours: [at(10), at(11)], edges: [] });
  });
});

describe('isEmptyScope', () => {
  it('is true only for an empty list of ads', () => {
    expect(isEmptyScope([])).toBe(true);
    expect(isEmptyScope(['1'])).toBe(false);
    expect(isEmptyScope({ advertiserId: '7' })).toBe(false);
  });
});
