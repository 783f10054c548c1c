// Framing of spool records: [u32 BE payload length][u32 BE CRC-32 of the payload][payload]. Pure
// functions, no I/O. A record whose header or payload is cut short, or whose CRC does not match,
// ends the readable part of a spool: after a crash the last write may be torn, and it must be
// detected and dropped, never replayed as garbage.
import { crc32 } from 'node:zlib';

export const HEADER_BYTES = 8;
/** Larger lengths cannot be ours (a click event is a few hundred bytes): treat as corruption. */
export const MAX_PAYLOAD_BYTES = 1 << 20;

export interface SpoolRecord {
  /** Byte offset of the record's header in the spool file: its identity until the spool is emptied. */
  offset: number;
  payload: Buffer;
}

export interface Decoded {
  records: SpoolRecord[];
  /** File offset just after the last whole, valid record. */
  end: number;
  /**
   * Why decoding stopped before the end of `buf`: `partial` = the buffer ends inside a record (read
   * more, or a torn tail if this is the end of the file); `corrupt` = a bad length or CRC.
   */
  stop: 'end' | 'partial' | 'corrupt';
}

export function encodeRecord(payload: Buffer): Buffer {
  if (payload.length > MAX_PAYLOAD_BYTES)
    throw new Error(`spool record of ${payload.length} bytes is too large`);
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(crc32(payload), 4);
  payload.copy(out, HEADER_BYTES);
  return out;
}

export function encodeRecords(payloads: Buffer[]): Buffer {
  return Buffer.concat(payloads.map(encodeRecord));
}

/** Decodes the whole records at the start of `buf`, which was read from file offset `baseOffset`. */
export function decodeRecords(buf: Buffer, baseOffset: number, maxRecords = Infinity): Decoded {
  const records: SpoolRecord[] = [];
  let pos = 0;
  while (records.length < maxRecords) {
    if (pos === buf.length) return { records, end: baseOffset + pos, stop: 'end' };
    if (buf.length - pos < HEADER_BYTES) return { records, end: baseOffset + pos, stop: 'partial' };
    const length = buf.readUInt32BE(pos);
    if (length > MAX_PAYLOAD_BYTES) return { records, end: baseOffset + pos, stop: 'corrupt' };
    if (buf.length - pos - HEADER_BYTES < length) return { records, end: baseOffset + pos, stop: 'partial' };
    const payload = buf.subarray(pos + HEADER_BYTES, pos + HEADER_BYTES + length);
    if (crc32(payload) !== buf.readUInt32BE(pos + 4))
      return { records, end: baseOffset + pos, stop: 'corrupt' };
    records.push({ offset: baseOffset + pos, payload: Buffer.from(payload) });
    pos += HEADER_BYTES + length;
  }
  return { records, end: baseOffset + pos, stop: pos === buf.length ? 'end' : 'partial' };
}
