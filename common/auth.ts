// API keys and who is calling. Advertiser keys (`ak_…`) and impression keys (`ik_…`) are 256-bit
// random tokens shown once at creation; only their sha256 is stored. A slow password hash (bcrypt,
// scrypt) defends low-entropy secrets against brute force; a 256-bit random key cannot be
// brute-forced, so one sha256 is enough and lets the key be found by an indexed equality lookup.
//
// Roles: the admin key (operators), an advertiser's key (its own ads and counts), and an impression
// key (an ad server's: it may mint impressions, `MINTER_ROUTES`, and nothing else; each has its own
// id and is revoked alone).
//
// For the HTTP layers: `identifyCaller(pool)` sets `res.locals.caller` for a good key (and nothing
// for a bad one, so a failed-authentication limit can count it), `requireCaller` answers 401 for a
// bad key and 403 for a role outside its routes, `authenticate(pool)` is both; `requireAdmin` and
// `canSeeAd` decide access further on.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import { config } from './config.js';
import { sendApiError } from './http-errors.js';

/** Who made a request: the operator (admin key) or one advertiser (its own key). */
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

/** The only requests an impression key may make (method and path): least privilege. */
export const MINTER_ROUTES: ReadonlySet<string> = new Set([
  'POST /v1/impressions',
  'POST /v1/impressions/batch',
]);

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

/** May `caller` mint impressions of an ad owned by `adAdvertiserId`? The admin, any impression key, the owner. */
export function canMintFor(caller: Caller, adAdvertiserId: string): boolean {
  return caller.kind === 'minter' || canSeeAd(caller, adAdvertiserId);
}

/** The caller set by `authenticate`; throws if the middleware did not run (a wiring bug). */
export function callerOf(res: Response): Caller {
  const caller = (res.locals as { caller?: Caller }).caller;
  if (!caller) throw new Error('authenticate() must run before this handler');
  return caller;
}

// Key → caller, kept briefly so a dashboard polling the API costs no query per request. The TTL
// bounds how long a revoked impression key still works on another API replica (the replica that
// revokes it forgets it at once, `forgetKey`).
const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 10_000;
// A new key is random, so it was never looked up before it existed: remembering misses is safe.
const UNKNOWN_TTL_MS = 60_000;
const known = new LRUCache<string, Caller>({ max: CACHE_MAX, ttl: CACHE_TTL_MS });
const unknown = new LRUCache<string, true>({ max: CACHE_MAX, ttl: UNKNOWN_TTL_MS });

/** Drops a key (by its hash) from this process's cache: a revoked key stops working here at once. */
export function forgetKey(hash: string): void {
  known.delete(hash);
}

interface AuthLocals {
  caller?: Caller;
  /** Why the key was refused (set by `identifyCaller`, answered by `requireCaller`). */
  authFailure?: string;
}

/** Looks a non-admin key up: advertisers by hash, impression keys (not revoked) by hash. */
async function lookUpKey(pool: pg.Pool, key: string, hash: string): Promise<Caller | undefined> {
  if (key.startsWith(IMPRESSION_KEY_PREFIX)) {
    const r = await pool.query<{ key_id: string }>(
      'select key_id from impression_keys where key_hash = $1 and revoked_at is null',
      [hash],
    );
    return r.rows[0] && { kind: 'minter', keyId: r.rows[0].key_id };
  }
  const r = await pool.query<{ advertiser_id: string }>(
    'select advertiser_id from advertisers where api_key_hash = $1',
    [hash],
  );
  return r.rows[0] && { kind: 'advertiser', advertiserId: r.rows[0].advertiser_id };
}

/**
 * Express middleware: resolves `Authorization: Bearer <key>` to a `Caller` in `res.locals.caller`.
 * A missing or unknown key sets no caller, only `res.locals.authFailure`, and goes on: the
 * failed-authentication limit counts it, then `requireCaller` answers 401. A request already
 * identified further up passes. Unknown keys are remembered briefly too: a client repeating a wrong
 * key costs no query each time.
 */
export function identifyCaller(pool: pg.Pool): RequestHandler {
  return (req: Request, res: Response, next: NextFunction) => {
    const locals = res.locals as AuthLocals;
    if (locals.caller || locals.authFailure) {
      next();
      return;
    }
    const key = bearerToken(req.headers.authorization);
    if (!key) {
      locals.authFailure = 'send your API key as "Authorization: Bearer <key>"';
      next();
      return;
    }
    if (isAdminKey(key)) {
      locals.caller = { kind: 'admin' };
      next();
      return;
    }
    const hash = hashApiKey(key);
    const hit = known.get(hash);
    if (hit) {
      locals.caller = hit;
      next();
      return;
    }
    if (unknown.has(hash)) {
      locals.authFailure = 'unknown API key';
      next();
      return;
    }
    lookUpKey(pool, key, hash)
      .then((caller) => {
        if (caller) {
          known.set(hash, caller);
          locals.caller = caller;
        } else {
          unknown.set(hash, true);
          locals.authFailure = 'unknown API key';
        }
        next();
      })
      .catch(next);
  };
}

/** Express middleware after `identifyCaller`: 401 without a caller; 403 for a role outside its routes. */
export const requireCaller: RequestHandler = (req, res, next) => {
  const locals = res.locals as AuthLocals;
  if (!locals.caller) {
    sendApiError(res, 401, 'unauthorized', locals.authFailure ?? 'unknown API key');
    return;
  }
  if (
    locals.caller.kind === 'minter' &&
    !MINTER_ROUTES.has(`${req.method} ${req.originalUrl.split('?')[0]}`)
  ) {
    sendApiError(
      res,
      403,
      'forbidden',
      'an impression key may only mint impressions (POST /v1/impressions[/batch])',
    );
    return;
  }
  next();
};

/** `identifyCaller` then `requireCaller`: a request without a good key (for this route) goes no further. */
export function authenticate(pool: pg.Pool): RequestHandler[] {
  return [identifyCaller(pool), requireCaller];
}

/** Express middleware after `authenticate`: only the admin key passes, others get 403. */
export const requireAdmin: RequestHandler = (_req, res, next) => {
  if (callerOf(res).kind !== 'admin') {
    sendApiError(res, 403, 'forbidden', 'this operation needs the admin key');
    return;
  }
  next();
};
