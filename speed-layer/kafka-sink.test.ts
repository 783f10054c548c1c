import { describe, expect, it } from 'vitest';
import { chunks } from './kafka-sink.js';

describe('chunks', () => {
  it('splits messages into sends of at most 512 KiB, in order, none lost or empty', () => {
    const items = Array.from({ length: 10_000 }, (_, i) => i);
    const groups = [...chunks(items, (i) => ({ key: `k${i}`, value: 'x'.repeat(200) }))];
    expect(groups.length).toBeGreaterThan(3);
    expect(groups.flat().map((m) => m.key)).toEqual(items.map((i) => `k${i}`));
    for (const g of groups) {
      expect(g.length).toBeGreaterThan(0);
      expect(g.reduce((n, m) => n + String(m.key).length + String(m.value).length, 0)).toBeLessThanOrEqual(
        512 * 1024,
      );
    }
  });

  it('sends a message larger than the bound alone rather than never', () => {
    const groups = [...chunks([1, 2], (i) => ({ key: `k${i}`, value: 'x'.repeat(600 * 1024) }))];
    expect(groups.map((g) => g.length)).toEqual([1, 1]);
  });
});
