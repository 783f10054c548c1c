// unacked: which messages of a send Kafka's answer does not cover (checked-sends.ts, tulios/kafkajs#1303).
import { describe, expect, it } from 'vitest';
import { unacked } from './checked-sends.js';

describe('unacked', () => {
  it("keeps the messages whose partition the send's answer lacks (or answered with an error)", () => {
    const m = [0, 1, 2, 3].map((i) => ({ key: `k${i}`, value: `v${i}` }));
    const placed = new WeakMap(m.map((x, i) => [x, i % 3] as const)); // partitions 0, 1, 2, 0
    const answer = (partition: number, errorCode = 0, topicName = 'clicks') => ({
      topicName,
      partition,
      errorCode,
    });
    // kafkajs resolved without partition 2 (its leader moved to a broker that had already answered).
    expect(unacked(m, [answer(0), answer(1)], 'clicks', placed)).toEqual([m[2]]);
    expect(unacked(m, [answer(0), answer(1, 6), answer(2, 0, 'other')], 'clicks', placed)).toEqual([
      m[1],
      m[2],
    ]);
    expect(unacked(m, [answer(2), answer(1), answer(0)], 'clicks', placed)).toEqual([]);
    // A message the partitioner never placed is not known to be in Kafka.
    expect(unacked([{ key: 'x', value: 'y' }], [answer(0)], 'clicks', placed)).toHaveLength(1);
  });
});
