// Rate limits of the API (express-rate-limit with its Redis store, so they hold across API replicas):
// failed authentications per client address, and requests per caller — each advertiser key, and the
// admin key. Over a limit: 429 with Retry-After and the API's error body. The click endpoint is not
// limited (it must stay cheap instead, see ingest/click-handler.ts).
//
// The client address is Express's `req.ip`: X-Forwarded-For is believed only as far as our own
// proxies set it (`trust proxy` = ADCLICK_TRUSTED_PROXY_HOPS, apps/api.ts), so a client cannot pick
// its own bucket, and users behind the proxy do not share one. Redis down: requests pass (the limits
// protect the service; refusing every request would be the outage they guard against).
import { createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { rateLimit, type Options } from 'express-rate-limit';
import type { Redis } from 'ioredis';
import { RedisStore, type RedisReply } from 'rate-limit-redis';
import { bearerToken, callerOf, isAdminKey } from './auth.js';
import { config } from './config.js';
import { sendApiError } from './http-errors.js';

export interface RateLimits {
  /** Window of the per-caller limits (s). */
  windowS: number;
  /** Requests per window per advertiser key. */
  advertiser: number;
  /** Requests per window with the admin key (operators and the ad-serving side's impressions). */
  admin: number;
  /** Failed authentications (401) per client address per `authWindowS`; then 429 for that address. */
  authFailures: number;
  authWindowS: number;
}

export const configuredRateLimits = (): RateLimits => ({
  windowS: config.ADCLICK_RATE_LIMIT_WINDOW_S,
  advertiser: config.ADCLICK_RATE_LIMIT_ADVERTISER,
  admin: config.ADCLICK_RATE_LIMIT_ADMIN,
  authFailures: config.ADCLICK_RATE_LIMIT_AUTH_FAILURES,
  authWindowS: config.ADCLICK_RATE_LIMIT_AUTH_WINDOW_S,
});

export interface RateLimiters {
  /** Before authentication: refuses an address that failed too often; counts only 401 answers. */
  authFailures: RequestHandler;
  /** After authentication: requests per advertiser key, and for the admin key. */
  perCaller: RequestHandler;
}

/** The limiters over `redis` (keys under `prefix`, so tests can keep their own buckets). */
export function rateLimiters(redis: Redis, limits: RateLimits, prefix = 'rl:'): RateLimiters {
  const common: Partial<Options> = {
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    passOnStoreError: true,
    logger: quietLogger(),
    handler: (_req: Request, res: Response) =>
      sendApiError(res, 429, 'rate_limited', 'too many requests; retry after the time in Retry-After'),
  };
  return {
    authFailures: rateLimit({
      ...common,
      windowMs: limits.authWindowS * 1000,
      limit: limits.authFailures,
      store: redisStore(redis, `${prefix}auth:`),
      // Counted up front (a flood in flight is stopped too), given back unless the answer was a 401.
      skipSuccessfulRequests: true,
      // The admin key (the ad-serving side's) never fails to authenticate, and must not be locked out
      // by counts a Redis outage left behind (counted before it, never given back during it).
      skip: (req) => {
        const key = bearerToken(req.headers.authorization);
        return key !== undefined && isAdminKey(key);
      },
      requestWasSuccessful: (_req, res) => res.statusCode !== 401,
      handler: (_req: Request, res: Response) =>
        sendApiError(
          res,
          429,
          'rate_limited',
          'too many failed authentications from this address; retry later',
        ),
    }),
    perCaller: rateLimit({
      ...common,
      windowMs: limits.windowS * 1000,
      limit: (_req, res) => (callerOf(res).kind === 'admin' ? limits.admin : limits.advertiser),
      keyGenerator: (_req, res) => {
        const caller = callerOf(res);
        return caller.kind === 'admin' ? 'admin' : `advertiser:${caller.advertiserId}`;
      },
      store: redisStore(redis, `${prefix}caller:`),
    }),
  };
}

/**
 * The Redis store over an ioredis client. SCRIPT LOAD answers with the script's SHA-1 even while
 * Redis is away (the store keeps that answer forever; a later EVALSHA that finds no script makes it
 * load the script again), so limits come back by themselves with Redis.
 */
function redisStore(redis: Redis, prefix: string): RedisStore {
  return new RedisStore({
    prefix,
    sendCommand: async (command: string, ...args: string[]) => {
      try {
        return (await redis.call(command, ...args)) as RedisReply;
      } catch (e) {
        if (command.toUpperCase() === 'SCRIPT' && args[0]?.toUpperCase() === 'LOAD' && args[1] !== undefined)
          return createHash('sha1').update(args[1]).digest('hex');
        throw e;
      }
    },
  });
}

/** One line per minute at most while Redis is away, not one per request. */
function quietLogger(): Options['logger'] {
  let last = 0;
  const log = (error: unknown, message?: string): void => {
    if (Date.now() - last < 60_000) return;
    last = Date.now();
    console.error(`[rate-limits] ${message ?? ''} ${(error as Error)?.message ?? String(error)}`);
  };
  return { error: log, warn: log };
}
