import { createHash, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeClickEvent, encodeClickEvent, saltOf, type ClickEvent } from './click-event.js';

const base: ClickEvent = {
  v: 1,
  eventId: '20946249-cda3-415b-9644-e5c5ee888a17',
  adId: '7246133',
  advertiserId: '1234',
  ts: 1_796_156_693_600,
  status: 'valid',
  salt: 3,
};

describe('click event encodings', () => {
  const cases: Array<[string, ClickEvent]> = [
    ['the fields every event has', base],
    [
      'every optional field, non-ASCII text',
      {
        ...base,
        userAgent: 'Mözilla/5.0 (ü; 日本)',
        ipHash: 'abcdefghij_-0123',
        referrer: 'https://pub.example/ä?q=1',
      },
    ],
    [
      'each status, the largest salt and ids',
      { ...base, status: 'bad_signature', salt: 255, adId: '999999999999999999', advertiserId: '1' },
    ],
    ['an event id that is no UUID (kept as text)', { ...base, eventId: 'not-a-uuid-ÄÖ', status: 'expired' }],
    [
      'an upper-case UUID (kept as text, exactly)',
      { ...base, eventId: base.eventId.toUpperCase(), status: 'duplicate' },
    ],
  ];
  it.each(cases)('binary and JSON read back equal: %s', (_, event) => {
    for (const encoding of ['binary', 'json'] as const) {
      expect(decodeClickEvent(encodeClickEvent(event, encoding))).toEqual(event);
    }
  });

  it('every byte value of a UUID, and ASCII fields of every length, read back exactly', () => {
    for (let first = 0; first < 256; first += 16) {
      const bytes = Buffer.from(Array.from({ length: 16 }, (_, i) => (first + i * 17) & 0xff));
      const hex = bytes.toString('hex');
      const eventId = [
        hex.slice(0, 8),
        hex.slice(8, 12),
        hex.slice(12, 16),
        hex.slice(16, 20),
        hex.slice(20),
      ].join('-');
      for (let n = 1; n <= 18; n++) {
        const event = { ...base, eventId, adId: '9'.repeat(n), ipHash: 'x'.repeat(n) };
        expect(decodeClickEvent(encodeClickEvent(event))).toEqual(event);
      }
    }
  });

  it('binary is the default, starts with its layout byte and is about a third of the JSON', () => {
    const binary = encodeClickEvent(base);
    const json = encodeClickEvent(base, 'json');
    expect(binary[0]).toBe(0x01);
    expect(json[0]).toBe('{'.charCodeAt(0));
    expect(binary.length).toBeLessThan(json.length / 2.5);
  });

  it('anything else is refused with the reason, never read as an event', () => {
    const binary = encodeClickEvent({ ...base, userAgent: 'ua' });
    expect(() => decodeClickEvent(Buffer.from([0x09, 1, 2, 3]))).toThrow(
      /unknown click event encoding \(first byte 0x09\)/,
    );
    expect(() => decodeClickEvent(Buffer.alloc(0))).toThrow();
    for (let cut = 1; cut < binary.length; cut++)
      expect(() => decodeClickEvent(binary.subarray(0, cut)), `cut at ${cut}`).toThrow();
    expect(() => decodeClickEvent(Buffer.concat([binary, Buffer.from([0])]))).toThrow(/malformed/);
    const badStatus = Buffer.from(binary);
    badStatus[1] = 9;
    expect(() => decodeClickEvent(badStatus)).toThrow(/status/);
    expect(() => decodeClickEvent(Buffer.from('{"v":2}'))).toThrow(/version 2/);
  });
});

describe('saltOf', () => {
  // The salt is part of every count key and of the click's Kafka key: it must stay the first four
  // bytes of the impression id's SHA-1, big-endian, modulo the salts, whatever computes it.
  it("is the first 32 bits of the id's SHA-1 modulo the salts", () => {
    const ids = [...Array.from({ length: 2000 }, () => randomUUID()), 'é-not-ascii', ''];
    for (const id of ids) {
      const digest = createHash('sha1').update(id, 'utf8').digest();
      for (const salts of [2, 3, 8, 16, 255, 2 ** 31 + 11])
        expect(saltOf(id, salts), `${id} over ${salts}`).toBe(digest.readUInt32BE(0) % salts);
    }
  });

  it('is 0 for one salt or none', () => {
    expect(saltOf(randomUUID(), 1)).toBe(0);
    expect(saltOf(randomUUID(), 0)).toBe(0);
  });
});
