// The click event on the `clicks` topic (schema v1, documented in docs/click-event.md). One event per
// click request with a known ad; only `valid` events are counted, the rest are kept for audit.
import { hash } from 'node:crypto';

export const CLICK_EVENT_VERSION = 1;
export const CLICK_STATUSES = ['valid', 'duplicate', 'bad_signature', 'expired'] as const;
export type ClickStatus = (typeof CLICK_STATUSES)[number];

export interface ClickEvent {
  v: typeof CLICK_EVENT_VERSION;
  /** The impression id: one impression, one counted click. */
  eventId: string;
  adId: string;
  advertiserId: string;
  /** Server receive time, epoch ms (UTC). */
  ts: number;
  status: ClickStatus;
  /** Key salt in [0, salts): derived from the impression id, so every click of one impression lands in one partition. */
  salt: number;
  userAgent?: string;
  ipHash?: string;
  referrer?: string;
}

/**
 * How an event is written to Kafka and the spool. Readers take both forms, always: `json` (UTF-8
 * JSON, the first form; its first byte is `{`) and `binary` (layout 1 below, ~60 bytes where the
 * JSON takes ~170; its first byte is 0x01). A later layout gets the next first byte.
 */
export const CLICK_EVENT_ENCODINGS = ['json', 'binary'] as const;
export type ClickEventEncoding = (typeof CLICK_EVENT_ENCODINGS)[number];

/**
 * Binary layout 1 of a v1 click event (big-endian; strings are length-prefixed):
 *   u8 0x01 · u8 status (index in CLICK_STATUSES) · u8 salt · u8 flags · u48 ts (epoch ms)
 *   · u8 n + n ASCII adId · u8 n + n ASCII advertiserId
 *   · eventId: 16 bytes if flags & 1 (a lower-case UUID), else u8 n + n UTF-8
 *   · [flags & 2: u16 n + n UTF-8 userAgent] · [flags & 4: u8 n + n ASCII ipHash]
 *   · [flags & 8: u16 n + n UTF-8 referrer]
 */
const BINARY_LAYOUT_1 = 0x01;
const JSON_FIRST_BYTE = 0x7b; // '{'
const F_UUID = 1;
const F_USER_AGENT = 2;
const F_IP_HASH = 4;
const F_REFERRER = 8;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const STATUS_CODE = new Map<ClickStatus, number>(CLICK_STATUSES.map((s, i) => [s, i]));
// Short ASCII fields are copied byte by byte in JS: a Buffer.write/toString call per field costs more.
const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) HEX_VALUE[i.toString(16).charCodeAt(0)] = i;

function writeAscii(b: Buffer, s: string, at: number): number {
  for (let i = 0; i < s.length; i++) b[at + i] = s.charCodeAt(i);
  return s.length;
}

// Strings of 13 characters or more built by `+=` are V8 cons strings: a tree of one 32-byte node
// per concatenation, which a reader that keeps the string (the speed layer's held impression ids,
// the archiver's buffered rows) keeps whole, ~500 bytes for a UUID. Longer fields are therefore made
// flat in one step.
const CONS_FROM = 13;

function readAscii(b: Buffer, at: number, n: number): string {
  if (n >= CONS_FROM) return b.toString('latin1', at, at + n);
  let s = '';
  for (let i = at; i < at + n; i++) s += String.fromCharCode(b[i]!);
  return s;
}

/** The 16 bytes of a lower-case UUID (its format checked by the caller). */
function writeUuid(b: Buffer, id: string, at: number): number {
  let j = at;
  for (let i = 0; i < 36; i += 2) {
    if (i === 8 || i === 13 || i === 18 || i === 23) i++;
    b[j++] = (HEX_VALUE[id.charCodeAt(i)]! << 4) | HEX_VALUE[id.charCodeAt(i + 1)]!;
  }
  return 16;
}

const HEX_CODE = Array.from({ length: 16 }, (_, i) => i.toString(16).charCodeAt(0));
const DASH = 0x2d;
const uuidCodes: number[] = new Array<number>(36).fill(0);

/** The lower-case UUID of 16 bytes, as one flat string (see CONS_FROM). */
function readUuid(b: Buffer, at: number): string {
  let j = 0;
  for (let i = 0; i < 16; i++) {
    const x = b[at + i]!;
    uuidCodes[j++] = HEX_CODE[x >> 4]!;
    uuidCodes[j++] = HEX_CODE[x & 15]!;
    if (i === 3 || i === 5 || i === 7 || i === 9) uuidCodes[j++] = DASH;
  }
  return String.fromCharCode.apply(null, uuidCodes);
}

/** The event in `encoding` (default binary: what click processes write unless told otherwise). */
export function encodeClickEvent(event: ClickEvent, encoding: ClickEventEncoding = 'binary'): Buffer {
  return encoding === 'json' ? Buffer.from(JSON.stringify(event)) : encodeBinary(event);
}

function encodeBinary(e: ClickEvent): Buffer {
  const uuid = UUID.test(e.eventId);
  const eventIdBytes = uuid ? 16 : 1 + Buffer.byteLength(e.eventId);
  const ua = e.userAgent === undefined ? -1 : Buffer.byteLength(e.userAgent);
  const ref = e.referrer === undefined ? -1 : Buffer.byteLength(e.referrer);
  const ip = e.ipHash === undefined ? -1 : e.ipHash.length;
  if (e.salt > 255 || e.adId.length > 255 || e.advertiserId.length > 255 || eventIdBytes > 256 || ip > 255)
    throw new Error('click event field too large for binary layout 1');
  const size =
    10 +
    1 +
    e.adId.length +
    1 +
    e.advertiserId.length +
    eventIdBytes +
    (ua >= 0 ? 2 + ua : 0) +
    (ip >= 0 ? 1 + ip : 0) +
    (ref >= 0 ? 2 + ref : 0);
  const b = Buffer.allocUnsafe(size);
  b[0] = BINARY_LAYOUT_1;
  b[1] = STATUS_CODE.get(e.status)!;
  b[2] = e.salt;
  b[3] =
    (uuid ? F_UUID : 0) |
    (ua >= 0 ? F_USER_AGENT : 0) |
    (ip >= 0 ? F_IP_HASH : 0) |
    (ref >= 0 ? F_REFERRER : 0);
  b.writeUIntBE(e.ts, 4, 6); // u48: epoch ms until the year 10889
  let at = 10;
  b[at++] = e.adId.length;
  at += writeAscii(b, e.adId, at);
  b[at++] = e.advertiserId.length;
  at += writeAscii(b, e.advertiserId, at);
  if (uuid) {
    at += writeUuid(b, e.eventId, at);
  } else {
    b[at++] = eventIdBytes - 1;
    at += b.write(e.eventId, at, 'utf8');
  }
  if (ua >= 0) {
    b.writeUInt16BE(ua, at);
    at += 2 + b.write(e.userAgent!, at + 2, 'utf8');
  }
  if (ip >= 0) {
    b[at++] = ip;
    at += writeAscii(b, e.ipHash!, at);
  }
  if (ref >= 0) {
    b.writeUInt16BE(ref, at);
    at += 2 + b.write(e.referrer!, at + 2, 'utf8');
  }
  return b;
}

/**
 * Reads an event from the topic or the spool, in either encoding; throws on anything that is not a
 * v1 click event (a consumer must then stop, not skip it: docs/click-event.md).
 */
export function decodeClickEvent(bytes: Buffer | string): ClickEvent {
  if (typeof bytes !== 'string' && bytes.length > 0 && bytes[0] !== JSON_FIRST_BYTE) {
    if (bytes[0] === BINARY_LAYOUT_1) return decodeBinary(bytes);
    throw new Error(`unknown click event encoding (first byte 0x${bytes[0]!.toString(16).padStart(2, '0')})`);
  }
  const raw: unknown = JSON.parse(typeof bytes === 'string' ? bytes : bytes.toString('utf8'));
  if (typeof raw !== 'object' || raw === null) throw new Error('click event is not an object');
  const e = raw as Record<string, unknown>;
  if (e.v !== CLICK_EVENT_VERSION) throw new Error(`unsupported click event version ${String(e.v)}`);
  if (typeof e.eventId !== 'string' || typeof e.adId !== 'string' || typeof e.advertiserId !== 'string') {
    throw new Error('click event lacks eventId, adId or advertiserId');
  }
  if (typeof e.ts !== 'number' || !Number.isFinite(e.ts)) throw new Error('click event has no numeric ts');
  if (!CLICK_STATUSES.includes(e.status as ClickStatus))
    throw new Error(`unknown click status ${String(e.status)}`);
  if (typeof e.salt !== 'number' || !Number.isInteger(e.salt) || e.salt < 0)
    throw new Error('click event has no salt');
  return raw as ClickEvent;
}

function malformed(b: Buffer): never {
  throw new Error(`binary click event truncated or malformed (${b.length} bytes)`);
}

function decodeBinary(b: Buffer): ClickEvent {
  const len = b.length;
  if (len < 10 + 2 + 16) malformed(b);
  const status = CLICK_STATUSES[b[1]!];
  if (status === undefined) throw new Error(`unknown click status code ${b[1]}`);
  const flags = b[3]!;
  if (flags > 15) throw new Error(`unknown binary click event flags 0x${flags.toString(16)}`);
  const ts = b[4]! * 2 ** 40 + b[5]! * 2 ** 32 + ((b[6]! << 24) >>> 0) + (b[7]! << 16) + (b[8]! << 8) + b[9]!;
  let at = 11;
  let n = b[10]!;
  if (at + n + 1 > len) malformed(b);
  const adId = readAscii(b, at, n);
  at += n;
  n = b[at++]!;
  if (at + n > len) malformed(b);
  const advertiserId = readAscii(b, at, n);
  at += n;
  let eventId: string;
  if (flags & F_UUID) {
    if (at + 16 > len) malformed(b);
    eventId = readUuid(b, at);
    at += 16;
  } else {
    if (at >= len) malformed(b);
    n = b[at++]!;
    if (at + n > len) malformed(b);
    eventId = b.toString('utf8', at, at + n);
    at += n;
  }
  const event: ClickEvent = { v: CLICK_EVENT_VERSION, eventId, adId, advertiserId, ts, status, salt: b[2]! };
  if (flags & F_USER_AGENT) {
    if (at + 2 > len) malformed(b);
    n = b.readUInt16BE(at);
    at += 2;
    if (at + n > len) malformed(b);
    event.userAgent = b.toString('utf8', at, at + n);
    at += n;
  }
  if (flags & F_IP_HASH) {
    if (at >= len) malformed(b);
    n = b[at++]!;
    if (at + n > len) malformed(b);
    event.ipHash = readAscii(b, at, n);
    at += n;
  }
  if (flags & F_REFERRER) {
    if (at + 2 > len) malformed(b);
    n = b.readUInt16BE(at);
    at += 2;
    if (at + n > len) malformed(b);
    event.referrer = b.toString('utf8', at, at + n);
    at += n;
  }
  if (at !== len) malformed(b);
  return event;
}

/** Salt of an impression: a stable hash of its id into [0, salts). */
export function saltOf(impressionId: string, salts: number): number {
  if (salts <= 1) return 0;
  // One call, no Hash object: this runs once per click. The digest comes as a 'binary' (latin1)
  // string, one character per byte: on Node 20 a 'buffer' digest costs about a microsecond more per
  // call (a new backing store each time), and the salt needs only its first four bytes.
  const d = hash('sha1', impressionId, 'binary');
  const first =
    ((d.charCodeAt(0) << 24) | (d.charCodeAt(1) << 16) | (d.charCodeAt(2) << 8) | d.charCodeAt(3)) >>> 0;
  return first % salts;
}

/** The Kafka message key of a click: `adId:salt`, so a hot ad spreads over partitions. */
export const clickKey = (adId: string, salt: number): string => `${adId}:${salt}`;
