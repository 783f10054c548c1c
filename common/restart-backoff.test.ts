// The supervisors' restart delays: doubling after each short run, capped, fresh after a long run.
import { describe, expect, it } from 'vitest';
import { RestartBackoff } from './wait.js';

describe('RestartBackoff', () => {
  it('doubles the delay while the process keeps dying soon after its start, up to the cap', () => {
    const b = new RestartBackoff({ baseMs: 500 });
    const delays = Array.from({ length: 8 }, () => b.next(1000));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
  });

  it('starts again from the base delay once the process ran longer than healthyAfterMs', () => {
    const b = new RestartBackoff({ baseMs: 1000, maxMs: 5000, healthyAfterMs: 10_000 });
    expect([b.next(0), b.next(0), b.next(10_000)]).toEqual([1000, 2000, 4000]);
    expect(b.next(10_001)).toBe(1000);
    expect(b.next(5)).toBe(2000);
  });
});
