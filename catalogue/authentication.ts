// Who is calling: the API process's key check, in front of every /v1 route (apps/api.ts wires it
// before the catalogue's and the serving layer's routers). The keys are the catalogue's rows
// (advertisers, impression_keys; their format is common/auth.ts), so the catalogue looks them up.
//
// `identifyCaller(pool)` sets `res.locals.caller` for a good key (and nothing for a bad one, so a
// failed-authentication limit can count it), `requireCaller` answers 401 for a bad key and 403 for a
// role outside its routes, `authenticate(pool)` is both. An impression key may call `MINTER_ROUTES`
// and nothing else (least privilege).
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import { bearerToken, hashApiKey, isAdminKey, isImpressionKey, type Caller } from '../common/auth.js';
import { sendApiError } from '../common/http-errors.js';

/** The only requests an impression key may make (method and path): least privilege. */
export const MINTER_ROUTES: ReadonlySet<string> = new Set([
  'POST /v1/impressions',
  'POST /v1/impressions/batch',
]);

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
  if (isImpressionKey(key)) {
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
