// Rate limits of the API (express-rate-limit with its Redis store, so they hold across API replicas):
// failed authentications per client address and per key tried, and requests per caller — each
// advertiser key, each impression key, and the admin key. Over a limit: 429 with Retry-After and the
// API's error body. The click endpoint is not limited (it must stay cheap instead, see
// ingest/click-handler.ts).
//
// Failed authentications slow only what fails: the limit runs after the key is looked up
// (catalogue/authentication.ts `identifyCaller`) and skips every request with a good key, so one misconfigured
// client behind a NAT or proxy never locks out the advertisers beside it.
//
// The client address is Express's `req.ip`: X-Forwarded-For is believed only as far as our own
// proxies set it (`trust proxy` = ADCLICK_TRUSTED_PROXY_HOPS, apps/api.ts), so a client cannot pick
// its own bucket, and users behind the proxy do not share one. Redis down: requests pass (the limits
// protect the service; refusing every request would be the outage they guard against).
import { createHash } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import { ipKeyGenerator, rateLimit, type Options } from 'express-rate-limit';
import type { Redis } from 'ioredis';
import { RedisStore, type RedisReply } from 'rate-limit-redis';
import { bearerToken, callerOf, hashApiKey, type Caller } from '../common/auth.js';
import { config } from '../common/config.js';
import { sendApiError } from '../common/http-errors.js';

export interface RateLimits {
  /** Window of the per-caller limits (s). */
  windowS: number;
  /** Requests per window per advertiser key. */
  advertiser: number;
  /** Requests per window with the admin key (operators). */
  admin: number;
  /** Requests per window per impression key (an ad server minting impressions, up to 1,000 a request). */
  minter: number;
  /**
   * Failed authentications per client address, and per key tried, per `authWindowS`; then 429 for
   * further failures from that address (or with that key). Requests with a good key are never counted
   * nor refused.
   */
  authFailures: number;
  authWindowS: number;
}

export const configuredRateLimits = (): RateLimits => ({
  windowS: config.ADCLICK_RATE_LIMIT_WINDOW_S,
  advertiser: config.ADCLICK_RATE_LIMIT_ADVERTISER,
  admin: config.ADCLICK_RATE_LIMIT_ADMIN,
  minter: config.ADCLICK_RATE_LIMIT_MINTER,
  authFailures: config.ADCLICK_RATE_LIMIT_AUTH_FAILURES,
  authWindowS: config.ADCLICK_RATE_LIMIT_AUTH_WINDOW_S,
});

export interface RateLimiters {
  /**
   * After `identifyCaller`, before `requireCaller`: counts each request without a good key against
   * its client address and the key it tried, and answers 429 once either is over the limit.
   */
  authFailures: RequestHandler[];
  /** After authentication: requests per advertiser key, per impression key, and for the admin key. */
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
  const authFailure: Partial<Options> = {
    ...common,
    windowMs: limits.authWindowS * 1000,
    limit: limits.authFailures,
    // Only requests without a good key get here uncounted-for: each one is a failure.
    skip: (_req, res) => identified(res),
    handler: (_req: Request, res: Response) =>
      sendApiError(res, 429, 'rate_limited', 'too many failed authentications; retry later'),
  };
  return {
    authFailures: [
      rateLimit({
        ...authFailure,
        keyGenerator: (req) => `ip:${ipKeyGenerator(req.ip ?? 'unknown')}`,
        store: redisStore(redis, `${prefix}auth:`),
      }),
      rateLimit({
        ...authFailure,
        // A key guessed or misconfigured from many addresses is slowed too (by its hash: the key
        // itself never reaches Redis). A request without a key is counted by its address only.
        skip: (req, res) => identified(res) || bearerToken(req.headers.authorization) === undefined,
        keyGenerator: (req) => `key:${hashApiKey(bearerToken(req.headers.authorization) ?? '')}`,
        store: redisStore(redis, `${prefix}auth-key:`),
      }),
    ],
    perCaller: rateLimit({
      ...common,
      windowMs: limits.windowS * 1000,
      limit: (_req, res) => {
        const { kind } = callerOf(res);
        return kind === 'admin' ? limits.admin : kind === 'minter' ? limits.minter : limits.advertiser;
      },
      keyGenerator: (_req, res) => callerBucket(callerOf(res)),
      store: redisStore(redis, `${prefix}caller:`),
    }),
  };
}

const identified = (res: Response): boolean => (res.locals as { caller?: Caller }).caller !== undefined;

const callerBucket = (caller: Caller): string =>
  caller.kind === 'admin'
    ? 'admin'
    : caller.kind === 'minter'
      ? `minter:${caller.keyId}`
      : `advertiser:${caller.advertiserId}`;

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
