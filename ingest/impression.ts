// Signed impressions: the ad-serving side gets `/c/<adId>?imp&exp&sig` from POST /v1/impressions and
// the click path checks it. The signature is HMAC-SHA256 over `${adId}.${imp}.${exp}` (base64url),
// compared in constant time; pure functions, no I/O.
import { createHmac, createSecretKey, randomUUID, timingSafeEqual, type KeyObject } from 'node:crypto';

export interface Impression {
  impressionId: string;
  adId: string;
  /** Epoch ms after which a click is `expired`. */
  expiresAt: number;
  sig: string;
}

/** What the signature and expiry say about a click, before the duplicate check. */
export type ImpressionCheck = 'ok' | 'bad_signature' | 'expired';

/** Impression ids we issue are UUIDs; anything else in a click is not ours (and too long to log). */
const IMPRESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const EXPIRY = /^[1-9][0-9]{0,15}$/;

export const isImpressionId = (s: string): boolean => IMPRESSION_ID.test(s);

// Importing a string key costs more than the HMAC itself; the click path signs with one secret.
const keys = new Map<string, KeyObject>();
function keyOf(secret: string): KeyObject {
  let key = keys.get(secret);
  if (!key) {
    if (keys.size > 16) keys.clear();
    key = createSecretKey(Buffer.from(secret, 'utf8'));
    keys.set(secret, key);
  }
  return key;
}

export function signImpression(
  secret: string,
  adId: string,
  impressionId: string,
  expiresAt: number,
): string {
  return createHmac('sha256', keyOf(secret))
    .update(`${adId}.${impressionId}.${expiresAt}`)
    .digest('base64url');
}

export function newImpression(secret: string, adId: string, ttlSeconds: number, now: number): Impression {
  const impressionId = randomUUID();
  const expiresAt = now + ttlSeconds * 1000;
  return { impressionId, adId, expiresAt, sig: signImpression(secret, adId, impressionId, expiresAt) };
}

/** The click URL path of an impression, relative to the click service's base URL. */
export function clickPath(i: Impression): string {
  return `/c/${i.adId}?imp=${i.impressionId}&exp=${i.expiresAt}&sig=${i.sig}`;
}

/**
 * Checks the query parameters of a click against `adId`. The signature is checked first, so an
 * unsigned or tampered link is `bad_signature` whatever its expiry says.
 */
export function checkImpression(
  secret: string,
  adId: string,
  imp: string | null,
  exp: string | null,
  sig: string | null,
  now: number,
): ImpressionCheck {
  if (!imp || !exp || !sig || !isImpressionId(imp) || !EXPIRY.test(exp)) return 'bad_signature';
  const expected = Buffer.from(signImpression(secret, adId, imp, Number(exp)), 'utf8');
  const given = Buffer.from(sig, 'utf8');
  // timingSafeEqual needs equal lengths; a length mismatch leaks only the (public) signature length.
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return 'bad_signature';
  return Number(exp) <= now ? 'expired' : 'ok';
}
