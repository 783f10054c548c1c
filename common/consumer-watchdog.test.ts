// The stall rule: a partition with lag whose committed offset stands still for the bound is a stall,
// reported once per bound; progress, no lag, or a partition held on purpose is not.
import { describe, expect, it } from 'vitest';
import { StallDetector } from './consumer-watchdog.js';

describe('StallDetector', () => {
  it('reports a partition whose committed offset stands still with lag, once per bound', () => {
    const d = new StallDetector(10_000);
    const stuck = { partition: 4, committed: 23, end: 58_309 };
    expect(d.observe(0, [stuck])).toEqual([]);
    expect(d.observe(9_999, [stuck])).toEqual([]);
    expect(d.observe(10_000, [stuck])).toEqual([{ ...stuck, stalledForMs: 10_000 }]);
    expect(d.observe(15_000, [stuck])).toEqual([]); // the clock started again after the report
    expect(d.observe(20_000, [stuck]).map((s) => s.partition)).toEqual([4]);
  });

  it('does not report a partition that moves, has no lag, or is held on purpose', () => {
    const d = new StallDetector(1_000);
    for (let t = 0; t <= 5_000; t += 500) {
      const stalls = d.observe(
        t,
        [
          { partition: 0, committed: 100 + t, end: 10_000 }, // advancing
          { partition: 1, committed: 500, end: 500 }, // caught up
          { partition: 2, committed: -1, end: 0 }, // empty, nothing committed
          { partition: 3, committed: 7, end: 90 }, // stuck, but held (undecodable message)
        ],
        new Set([3]),
      );
      expect(stalls, `at ${t} ms`).toEqual([]);
    }
  });

  it('starts the clock when lag appears, not when the offset last moved', () => {
    const d = new StallDetector(1_000);
    d.observe(0, [{ partition: 0, committed: 50, end: 50 }]);
    expect(d.observe(5_000, [{ partition: 0, committed: 50, end: 60 }])).toEqual([]);
    expect(d.observe(6_000, [{ partition: 0, committed: 50, end: 70 }]).map((s) => s.partition)).toEqual([0]);
  });

  it('a partition with nothing committed yet but messages to read counts as stuck at its start', () => {
    const d = new StallDetector(1_000);
    d.observe(0, [{ partition: 5, committed: -1, end: 40 }]);
    expect(d.observe(1_000, [{ partition: 5, committed: -1, end: 40 }])).toHaveLength(1);
  });

  it('restarts the clock while the member works on the lag (reads, uploads), then reports when that stops', () => {
    const d = new StallDetector(4_000);
    const at = (activity: string) => [{ partition: 1, committed: 50, end: 100, activity }];
    d.observe(0, at('read 49'));
    expect(d.observe(3_000, at('read 99'))).toEqual([]); // a new consumer read the lag
    expect(d.observe(6_000, at('read 99, uploading 50'))).toEqual([]); // and uploads it
    expect(d.observe(9_000, at('read 99, uploading 50'))).toEqual([]); // a slow upload, < 4 s so far
    expect(d.observe(10_000, at('read 99, uploading 50')).map((s) => s.stalledForMs)).toEqual([4_000]);
  });
});
