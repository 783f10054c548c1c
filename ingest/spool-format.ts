// Framing of spool records: [u32 BE payload length][u32 BE CRC-32 of the payload][payload]. Pure
// functions, no I/O. A record whose header or payload is cut short, or whose CRC does not match, is
// never returned: after a crash the last write may be torn, and a disk may damage older bytes.
// `findFrame` finds where valid records start again after damaged bytes (resynchronisation).
import { crc32 } from 'node:zlib';

export const HEADER_BYTES = 8;
/** Larger lengths cannot be ours (a click event is a few hundred bytes): treat as corruption. */
export const MAX_PAYLOAD_BYTES = 1 << 20;
/** The largest frame a valid spool holds. */
export const MAX_FRAME_BYTES = HEADER_BYTES + MAX_PAYLOAD_BYTES;

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
   * more, or a torn tail if this is the end of the file); `corrupt` = a bad length or CRC. A zero
   * length is corrupt too: no record is empty, and zero-filled blocks (a torn write on some file
   * systems) would otherwise read as a run of valid empty records.
   */
  stop: 'end' | 'partial' | 'corrupt';
}

export function encodeRecord(payload: Buffer): Buffer {
  if (payload.length === 0) throw new Error('a spool record cannot be empty');
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
    if (length === 0 || length > MAX_PAYLOAD_BYTES)
      return { records, end: baseOffset + pos, stop: 'corrupt' };
    if (buf.length - pos - HEADER_BYTES < length) return { records, end: baseOffset + pos, stop: 'partial' };
    const payload = buf.subarray(pos + HEADER_BYTES, pos + HEADER_BYTES + length);
    if (crc32(payload) !== buf.readUInt32BE(pos + 4))
      return { records, end: baseOffset + pos, stop: 'corrupt' };
    records.push({ offset: baseOffset + pos, payload: Buffer.from(payload) });
    pos += HEADER_BYTES + length;
  }
  return { records, end: baseOffset + pos, stop: pos === buf.length ? 'end' : 'partial' };
}

/**
 * The first index in [from, until) of `buf` where a whole, valid frame starts, or -1. A frame that
 * would run past the end of `buf` does not count: give `buf` MAX_FRAME_BYTES beyond `until` (or
 * everything up to the end of the file) so that every candidate can be checked whole. A false match
 * inside a payload needs a plausible length followed by a CRC-32 that matches the bytes it spans
 * (about one chance in 4 billion per plausible length); inside JSON payloads not even the length is
 * plausible, as no UTF-8 text byte is 0.
 */
export function findFrame(buf: Buffer, from: number, until: number): number {
  const last = Math.min(until, buf.length - HEADER_BYTES);
  for (let i = from; i <= last && i < until; i++) {
    const length = buf.readUInt32BE(i);
    if (length === 0 || length > MAX_PAYLOAD_BYTES || i + HEADER_BYTES + length > buf.length) continue;
    const payload = buf.subarray(i + HEADER_BYTES, i + HEADER_BYTES + length);
    if (crc32(payload) === buf.readUInt32BE(i + 4)) return i;
  }
  return -1;
}
