// API keys and who is calling. Advertiser keys are 256-bit random tokens shown once at creation;
// only their sha256 is stored. A slow password hash (bcrypt, scrypt) defends low-entropy secrets
// against brute force; a 256-bit random key cannot be brute-forced, so one sha256 is enough and
// lets the key be found by an indexed equality lookup on every request.
//
// For the HTTP layers: `authenticate(pool)` sets `res.locals.caller`, `requireAdmin` and
// `canSeeAd` decide access.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import { config } from './config.js';
import { sendApiError } from './http-errors.js';

/** Who made a request: the operator (admin key) or one advertiser (its own key). */
export type Caller = { kind: 'admin' } | { kind: 'advertiser'; advertiserId: string };

const KEY_PREFIX = 'ak_';

/** A new advertiser key: `ak_` + 43 base64url characters (32 random bytes). */
export function generateApiKey(): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url');
}

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
  return caller.kind === 'admin' || caller.advertiserId === adAdvertiserId;
}

/** The caller set by `authenticate`; throws if the middleware did not run (a wiring bug). */
export function callerOf(res: Response): Caller {
  const caller = (res.locals as { caller?: Caller }).caller;
  if (!caller) throw new Error('authenticate() must run before this handler');
  return caller;
}

// Key → advertiser id, kept briefly so a dashboard polling the API costs no query per request.
// Keys are never revoked today; the TTL bounds how long a revoked key would still work.
const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 10_000;
// A new key is random, so it was never looked up before it existed: remembering misses is safe.
const UNKNOWN_TTL_MS = 60_000;

/**
 * Express middleware: resolves `Authorization: Bearer <key>` to a `Caller` in `res.locals.caller`,
 * or answers 401 (missing or unknown key). The admin key is checked first, then advertisers by hash.
 * A request already authenticated further up (apps/api.ts authenticates all of /v1 once, behind the
 * failed-authentication limit) passes. Unknown keys are remembered briefly too: a client repeating
 * a wrong key costs no query each time.
 */
export function authenticate(pool: pg.Pool): RequestHandler {
  const cache = new LRUCache<string, string>({ max: CACHE_MAX, ttl: CACHE_TTL_MS });
  const unknown = new LRUCache<string, true>({ max: CACHE_MAX, ttl: UNKNOWN_TTL_MS });
  return (req: Request, res: Response, next: NextFunction) => {
    if ((res.locals as { caller?: Caller }).caller) {
      next();
      return;
    }
    const key = bearerToken(req.headers.authorization);
    if (!key) {
      sendApiError(res, 401, 'unauthorized', 'send your API key as "Authorization: Bearer <key>"');
      return;
    }
    if (isAdminKey(key)) {
      res.locals.caller = { kind: 'admin' } satisfies Caller;
      next();
      return;
    }
    const hash = hashApiKey(key);
    const hit = cache.get(hash);
    if (unknown.has(hash)) {
      sendApiError(res, 401, 'unauthorized', 'unknown API key');
      return;
    }
    if (hit !== undefined) {
      res.locals.caller = { kind: 'advertiser', advertiserId: hit } satisfies Caller;
      next();
      return;
    }
    pool
      .query<{ advertiser_id: string }>('select advertiser_id from advertisers where api_key_hash = $1', [
        hash,
      ])
      .then((r) => {
        const row = r.rows[0];
        if (!row) {
          unknown.set(hash, true);
          sendApiError(res, 401, 'unauthorized', 'unknown API key');
          return;
        }
        cache.set(hash, row.advertiser_id);
        res.locals.caller = { kind: 'advertiser', advertiserId: row.advertiser_id } satisfies Caller;
        next();
      })
      .catch(next);
  };
}

/** Express middleware after `authenticate`: only the admin key passes, others get 403. */
export const requireAdmin: RequestHandler = (_req, res, next) => {
  if (callerOf(res).kind !== 'admin') {
    sendApiError(res, 403, 'forbidden', 'this operation needs the admin key');
    return;
  }
  next();
};
