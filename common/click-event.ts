// The click event on the `clicks` topic (schema v1, documented in docs/click-event.md). One event per
// click request with a known ad; only `valid` events are counted, the rest are kept for audit.
import { createHash } from 'node:crypto';

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

export function encodeClickEvent(event: ClickEvent): Buffer {
  return Buffer.from(JSON.stringify(event));
}

/** Parses and checks an event from the topic; throws on anything that is not a v1 click event. */
export function decodeClickEvent(bytes: Buffer | string): ClickEvent {
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

/** Salt of an impression: a stable hash of its id into [0, salts). */
export function saltOf(impressionId: string, salts: number): number {
  if (salts <= 1) return 0;
  return createHash('sha1').update(impressionId).digest().readUInt32BE(0) % salts;
}

/** The Kafka message key of a click: `adId:salt`, so a hot ad spreads over partitions. */
export const clickKey = (adId: string, salt: number): string => `${adId}:${salt}`;
