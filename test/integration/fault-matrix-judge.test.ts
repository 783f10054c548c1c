// The fault matrix's arithmetic, without a stack: the judged p99 and the click process's stage shares
// (fault-matrix-support.ts). Pure; in this folder because the helpers live beside the matrix.
import { describe, expect, it } from 'vitest';
import { judgedP99, stagesOver } from './fault-matrix-support.js';

describe('fault matrix judgement', () => {
  it('judges the p99 of the 302s, leaving out those due within the skipped window', () => {
    // 200 clicks at t = 0..199 ms; latency 5 ms, except 10 of 100 ms at t = 50..59.
    const series: number[] = [];
    for (let t = 0; t < 200; t++) series.push(t, t >= 50 && t < 60 ? 100 : 5);
    expect(judgedP99({ series })).toBe(100);
    expect(judgedP99({ series }, [50, 59])).toBe(5);
    expect(judgedP99({ series: [] })).toBeNaN();
  });

  it("gives each stage's share over the limit between two readings of the histograms", () => {
    const before = { within: 90, all: 100, redis: { within: 95, all: 100 }, log: { within: 80, all: 100 } };
    const after = {
      within: 1080,
      all: 1100,
      redis: { within: 1085, all: 1100 },
      log: { within: 1060, all: 1100 },
    };
    const shares = stagesOver(before, after);
    expect(shares?.redis).toBeCloseTo(0.01, 10); // 1,000 checks, 990 within
    expect(shares?.log).toBeCloseTo(0.02, 10); // 1,000 waits, 980 within
    expect(stagesOver(before, { ...after, redis: undefined })).toBeUndefined();
    expect(stagesOver(undefined, after)).toBeUndefined();
    // No clicks in between: nothing over.
    expect(stagesOver(before, before)).toEqual({ redis: 0, log: 0 });
  });
});
