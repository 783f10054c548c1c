import { describe, expect, it } from 'vitest';
import { chunks, countMessages, countRecordsOf, countRowKey } from './kafka-sink.js';
import type { CountChange } from './minute-window.js';

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

describe('countMessages', () => {
  const changes: CountChange[] = Array.from({ length: 23 }, (_, i) => ({
    adId: String(100 + (i % 5)),
    advertiserId: '7',
    salt: i % 3,
    minute: 1_700_000_040_000 + (i % 2) * 60_000,
    part: `e${i}`,
    clicks: i + 1,
    delta: 1 + (i % 2),
  }));

  it('cumulative, one row per message: each message keyed by its row (compaction keeps its latest)', () => {
    const messages = countMessages(2, changes, 5, 1, 900, 'cumulative');
    expect(messages).toHaveLength(changes.length);
    for (const [i, m] of messages.entries()) {
      const [row] = countRecordsOf(String(m.value));
      expect(m.partition).toBe(2);
      expect(m.key).toBe(countRowKey(row!));
      expect(row).toEqual({ ...changes[i], delta: undefined, part: `p2-e${i}`, updatedAt: 5 });
    }
  });

  it('several rows per message: every row once, in order, at most n a message, keys unique', () => {
    const messages = countMessages(2, changes, 5, 10, 900, 'cumulative');
    expect(messages.map((m) => countRecordsOf(String(m.value)).length)).toEqual([10, 10, 3]);
    const rows = messages.flatMap((m) => countRecordsOf(String(m.value)));
    const single = countMessages(2, changes, 5, 1, 900, 'cumulative').flatMap((m) =>
      countRecordsOf(String(m.value)),
    );
    expect(rows).toEqual(single);
    expect(new Set(messages.map((m) => m.key)).size).toBe(messages.length);
    // Another flush of the same partition (another checkpoint) never reuses a key.
    const next = countMessages(2, changes, 5, 10, 950, 'cumulative').map((m) => m.key);
    expect(next.filter((k) => messages.some((m) => m.key === k))).toEqual([]);
  });

  it('deltas: a row carries the clicks the flush added, not the running count', () => {
    for (const n of [1, 10]) {
      const rows = countMessages(2, changes, 5, n, 900, 'deltas').flatMap((m) =>
        countRecordsOf(String(m.value)),
      );
      expect(rows.map((r) => r.clicks)).toEqual(changes.map((c) => c.delta));
      expect(rows.map((r) => r.part)).toEqual(changes.map((c) => `p2-${c.part}`));
    }
  });

  it('deltas, one row per message: keys unique within and across flushes (compaction must drop none)', () => {
    // Two rows of one part in two flushes: both count, so they may not share a key.
    const first = countMessages(2, changes, 5, 1, 900, 'deltas').map((m) => String(m.key));
    const second = countMessages(2, changes, 6, 1, 950, 'deltas').map((m) => String(m.key));
    expect(new Set([...first, ...second]).size).toBe(first.length + second.length);
    const cumulative = countMessages(2, changes, 5, 1, 900, 'cumulative').map((m) => String(m.key));
    expect(first.filter((k) => cumulative.includes(k))).toEqual([]);
  });
});
