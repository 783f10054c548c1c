import { describe, expect, it } from 'vitest';
import { meetsTarget, percentile } from './report.js';

describe('bench report', () => {
  it('reads ≥ and ≤ targets', () => {
    expect(meetsTarget(10_500, '≥ 10000')).toBe(true);
    expect(meetsTarget(9_999, '≥ 10000')).toBe(false);
    expect(meetsTarget(26, '≤ 25')).toBe(false);
    expect(meetsTarget(3, undefined)).toBeUndefined();
  });
  it('takes nearest-rank percentiles', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(xs, 50)).toBe(50);
    expect(percentile(xs, 99)).toBe(99);
    expect(percentile(xs, 100)).toBe(100);
    expect(percentile([7], 99)).toBe(7);
  });
});
