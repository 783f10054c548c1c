// Turning spooled records back into Kafka messages: a record that is no click event is poison,
// set apart for the spool's quarantine instead of failing its whole batch.
import { describe, expect, it } from 'vitest';
import { encodeClickEvent, type ClickEvent } from '../common/click-event.js';
import { spooledMessages } from './spool-replay.js';

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
