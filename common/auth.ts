// API keys and who is calling, as every HTTP layer reads them. Advertiser keys (`ak_…`) and
// impression keys (`ik_…`) are 256-bit random tokens shown once at creation; only their sha256 is
// stored. A slow password hash (bcrypt, scrypt) defends low-entropy secrets against brute force; a
// 256-bit random key cannot be brute-forced, so one sha256 is enough and lets the key be found by an
// indexed equality lookup.
//
// Roles: the admin key (operators), an advertiser's key (its own ads and counts), and an impression
// key (an ad server's: it may mint impressions and nothing else; each has its own id and is revoked
// alone). The key check itself, which sets the caller, is the catalogue's
// (catalogue/authentication.ts, wired in front of every /v1 route by apps/api.ts); `callerOf`,
// `canSeeAd` and `requireAdmin` decide access further on; every process's /metrics takes the admin
// key in production (`isAdminKey`, common/health.ts).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import { config } from './config.js';
import { sendApiError } from './http-errors.js';

/** Who made a request: the operator (admin key), one advertiser (its own key), or an impression key. */
export type Caller =
  { kind: 'admin' } | { kind: 'advertiser'; advertiserId: string } | { kind: 'minter'; keyId: string };

const KEY_PREFIX = 'ak_';
const IMPRESSION_KEY_PREFIX = 'ik_';

/** A new advertiser key: `ak_` + 43 base64url characters (32 random bytes). */
export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** A new impression key (mints impressions only): `ik_` + 43 base64url characters. */
export function generateImpressionKey(): string {
  return IMPRESSION_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** Is `key` shaped as an impression key (looked up among the impression keys, not the advertisers)? */
export const isImpressionKey = (key: string): boolean => key.startsWith(IMPRESSION_KEY_PREFIX);

/** The stored form of a key: sha256, lowercase hex. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Constant-time check of a presented key against the admin key (compares digests, so lengths match). */
export function isAdminKey(key: string, adminKey: string = config.ADCLICK_ADMIN_KEY): boolean {
  const a = createHash('sha256').update(key, 'utf8').digest();
  const b = createHash('sha256').update(adminKey, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The bearer token of an `Authorization: Bearer <key>` header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/** May `caller` see or use an ad owned by `adAdvertiserId`? Callers who may not get a 404, never a 403. */
export function canSeeAd(caller: Caller, adAdvertiserId: string): boolean {
  return caller.kind === 'admin' || (caller.kind === 'advertiser' && caller.advertiserId === adAdvertiserId);
}

/** The caller set by the key check; throws if it did not run (a wiring bug). */
export function callerOf(res: Response): Caller {
  const caller = (res.locals as { caller?: Caller }).caller;
  if (!caller) throw new Error('authenticate() must run before this handler');
  return caller;
}

/** Express middleware after the key check: only the admin key passes, others get 403. */
export const requireAdmin: RequestHandler = (_req, res, next) => {
  if (callerOf(res).kind !== 'admin') {
    sendApiError(res, 403, 'forbidden', 'this operation needs the admin key');
    return;
  }
  next();
};
