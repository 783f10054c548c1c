// Turning spooled records back into Kafka messages: a record that is no click event is poison,
// set apart for the spool's quarantine instead of failing its whole batch.
import { describe, expect, it } from 'vitest';
import { encodeClickEvent, type ClickEvent } from '../common/click-event.js';
import { spooledMessages, unacked } from './click-log.js';

const event: ClickEvent = {
  v: 1,
  eventId: '6f1c1f3e-2a57-4c39-9d57-7f8f1b0c2d11',
  adId: '42',
  advertiserId: '7',
  ts: 1_700_000_000_000,
  status: 'valid',
  salt: 3,
};

describe('spooledMessages', () => {
  it('keys each click event by ad and salt (JSON records of earlier runs too), and sets apart records that are no click event', () => {
    const records = [
      { offset: 0, payload: encodeClickEvent(event, 'json') },
      { offset: 100, payload: Buffer.from(JSON.stringify({ ...event, v: 2 })) },
      { offset: 200, payload: Buffer.from('{"half a') },
      { offset: 300, payload: encodeClickEvent({ ...event, adId: '43' }) },
    ];
    const { messages, poison } = spooledMessages(records);
    expect(messages.map((m) => m.key)).toEqual(['42:3', '43:3']);
    expect(messages[0]!.value).toEqual(records[0]!.payload); // replayed as it was written
    expect(messages[1]!.value).toEqual(records[3]!.payload);
    expect(messages[0]!.timestamp).toBe(String(event.ts));
    expect(poison.map((p) => p.record.offset)).toEqual([100, 200]);
    expect(poison[0]!.reason).toMatch(/version 2/);
  });
});

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
