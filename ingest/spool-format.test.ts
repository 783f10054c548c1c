import { describe, expect, it } from 'vitest';
import { decodeRecords, encodeRecord, encodeRecords, findFrame, HEADER_BYTES } from './spool-format.js';

const payloads = ['{"a":1}', '{"b":"two"}', 'x'.repeat(1000)].map((s) => Buffer.from(s));

describe('spool framing', () => {
  it('round-trips records with their file offsets', () => {
    const buf = encodeRecords(payloads);
    const d = decodeRecords(buf, 100);
    expect(d.stop).toBe('end');
    expect(d.end).toBe(100 + buf.length);
    expect(d.records.map((r) => r.payload.toString())).toEqual(payloads.map((p) => p.toString()));
    expect(d.records.map((r) => r.offset)).toEqual([100, 100 + 8 + 7, 100 + 8 + 7 + 8 + 11]);
  });

  it('a torn last record (cut anywhere inside it) is detected and not returned', () => {
    const whole = encodeRecords(payloads.slice(0, 2));
    const last = encodeRecord(payloads[2]!);
    for (const cut of [1, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 1, last.length - 1]) {
      const d = decodeRecords(Buffer.concat([whole, last.subarray(0, cut)]), 0);
      expect(d.stop).toBe('partial');
      expect(d.records).toHaveLength(2);
      expect(d.end).toBe(whole.length);
    }
  });

  it('a last record whose bytes were not all written (zeros or garbage) fails its CRC', () => {
    const whole = encodeRecords(payloads.slice(0, 2));
    const last = encodeRecord(payloads[2]!);
    last.fill(0, HEADER_BYTES + 10); // the header made it to disk, the tail of the payload did not
    const d = decodeRecords(Buffer.concat([whole, last]), 0);
    expect(d.stop).toBe('corrupt');
    expect(d.records).toHaveLength(2);
    expect(d.end).toBe(whole.length);
  });

  it('an absurd length is corruption, not a 4 GB allocation', () => {
    const bad = Buffer.alloc(16, 0xff);
    const d = decodeRecords(bad, 0);
    expect(d).toEqual({ records: [], end: 0, stop: 'corrupt' });
  });

  it('stops after maxRecords and says where', () => {
    const buf = encodeRecords(payloads);
    const d = decodeRecords(buf, 0, 2);
    expect(d.records).toHaveLength(2);
    expect(d.stop).toBe('partial');
    expect(d.end).toBe(d.records[1]!.offset + HEADER_BYTES + payloads[1]!.length);
  });

  it('zeros on disk are corruption, not a run of empty records', () => {
    const whole = encodeRecords(payloads.slice(0, 1));
    const d = decodeRecords(Buffer.concat([whole, Buffer.alloc(64)]), 0);
    expect(d.stop).toBe('corrupt');
    expect(d.records).toHaveLength(1);
    expect(d.end).toBe(whole.length);
    expect(() => encodeRecord(Buffer.alloc(0))).toThrow(/empty/);
  });

  it('findFrame resynchronises to the next whole, valid frame after damaged bytes', () => {
    const good = encodeRecords(payloads);
    const damaged = Buffer.concat([Buffer.alloc(13, 0xab), Buffer.alloc(20), good]);
    expect(findFrame(damaged, 0, damaged.length)).toBe(33);
    // A frame whose CRC fails is passed over; one cut short by the end of the buffer does not count.
    const flipped = Buffer.from(good);
    flipped.writeUInt8(flipped.readUInt8(HEADER_BYTES + 1) ^ 1, HEADER_BYTES + 1);
    expect(findFrame(flipped, 0, flipped.length)).toBe(HEADER_BYTES + payloads[0]!.length);
    const lastAt = good.length - HEADER_BYTES - payloads[2]!.length;
    expect(findFrame(good.subarray(0, good.length - 1), lastAt, good.length)).toBe(-1);
    expect(findFrame(good, 1, 5)).toBe(-1); // only candidates in [from, until)
  });
});
