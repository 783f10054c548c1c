// The API process (`npm run api`): the catalogue and impressions API, the merged metrics API, the
// operators' endpoints and the dashboard, on API_PORT; the click process hands it every request that
// is not a click, so users keep one base URL. It serves its own /healthz, /readyz (PostgreSQL and the
// speed store) and /metrics (query latencies). Clicks never run here: a heavy advertiser query
// takes no CPU from redirects. `createApiApp` is the whole app, used as-is by the tests.
//
// In front of every route: a request id (X-Request-Id, in every error body and log line), security
// headers (helmet), 405 for a method a path does not take, and on /v1 the rate limits (Redis, so
// they hold across replicas): failed authentications per client address, then requests per key.
// /openapi.json describes it all, made from the same zod schemas the routes validate with.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import type { Admin } from 'kafkajs';
import express, { type Express } from 'express';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { z } from 'zod';
import { config } from '../common/config.js';
import { createPool, migrateWhenReachable, type Migrations } from '../common/db.js';
import {
  healthRouter,
  healthRoutes,
  unavailableWhileDown,
  watchDependency,
  type DependencyWatch,
} from '../common/health.js';
import { apiErrorHandler, requestId, sendApiError } from '../common/http-errors.js';
import { json, methodNotAllowed, openApiDocument, type ApiRoute } from '../common/openapi.js';
import { createRedis } from '../common/redis.js';
import { securityHeaders } from '../common/security-headers.js';
import type { SpeedStore } from '../common/speed-store.js';
import { createTemporalClient } from '../common/temporal.js';
import { isoSeconds } from '../common/time.js';
import { startBackfill } from '../workflows/operations.js';
import { identifyCaller, requireCaller } from '../catalogue/authentication.js';
import { configuredRateLimits, rateLimiters, type RateLimits } from '../catalogue/rate-limits.js';
import { catalogueRouter } from '../catalogue/router.js';
import { catalogueRoutes } from '../catalogue/routes.js';
import { clickRouteContract } from '../ingest/click-route.js';
import { startCatalogueRelay } from '../catalogue/relay.js';
import { configuredSigningKeys, impressionMinter, type SigningKeys } from '../ingest/impression.js';
import {
  createServingRouter,
  dashboardStatic,
  servingRoutes,
  type StartBackfill,
} from '../serving-layer/router.js';
import { createSpeedStore } from './speed-store.js';
import { createKafka } from '../common/kafka.js';
import { registry } from '../common/metrics.js';
import { registerOpsMetrics } from '../serving-layer/ops-metrics.js';
import { opsRouter, opsRoutes } from '../serving-layer/ops-router.js';
import { OpsStatusReader } from '../serving-layer/ops-status.js';

export interface ApiDeps {
  pool: pg.Pool;
  speedStore: SpeedStore;
  /** For POST /v1/admin/backfills; default: a client connected on first use. */
  temporalClient?: Client;
  /** Default: ADCLICK_SIGNING_KEYS / ADCLICK_SIGNING_SECRET. A plain secret: that one key, no key id. */
  signingKeys?: SigningKeys | string;
  /** Where the rate limits count (default: a client of REDIS_URL). */
  redis?: Redis;
  /** Over the configured limits (the bench raises them; tests lower them). */
  rateLimits?: Partial<RateLimits>;
  /** Key prefix of the rate-limit counters in Redis (tests keep their own buckets). */
  rateLimitPrefix?: string;
  impressionTtlSeconds?: number;
  speedTimeoutMs?: number;
  now?: () => number;
  /**
   * PostgreSQL checked in the background: while it is down, /v1 answers a prompt 503 (Retry-After)
   * instead of waiting for a connection, and /readyz says so without a query of its own.
   */
  postgresWatch?: DependencyWatch;
  /** Schema migrated in the background (the process started while PostgreSQL was away). */
  schema?: Migrations;
  /** The operators' status (GET /v1/admin/ops); default: opsStatusReader(pool). */
  ops?: OpsStatusReader;
}

/** Every route of the public HTTP surface (API.md), with its schemas. */
export const apiRoutes: ApiRoute[] = [
  ...catalogueRoutes,
  ...servingRoutes,
  ...opsRoutes,
  ...clickRouteContract,
  ...healthRoutes,
  {
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    responses: { '200': json('OpenAPI 3.1', z.record(z.string(), z.unknown())) },
  },
];

export function createApiApp(deps: ApiDeps): Express {
  const { pool, speedStore } = deps;
  const keys = deps.signingKeys ?? configuredSigningKeys();
  const redis = deps.redis ?? rateLimitRedis();
  const limiters = rateLimiters(
    redis,
    { ...configuredRateLimits(), ...deps.rateLimits },
    deps.rateLimitPrefix,
  );
  const openApi = openApiDocument(apiRoutes, { title: 'adclick', version: '1' });
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', config.ADCLICK_TRUSTED_PROXY_HOPS);
  app.use(requestId, securityHeaders());
  app.use(
    healthRouter({
      probes: {
        postgres: deps.postgresWatch?.probe ?? (() => pool.query('select 1')),
        ...(deps.schema && { migrations: deps.schema.probe }),
        speed: () => speedStore.ping(),
      },
    }),
  );
  app.get('/openapi.json', (_req, res) => {
    res.json(openApi);
  });
  app.use(methodNotAllowed(apiRoutes));
  app.use(dashboardStatic());
  // Every /v1 route needs PostgreSQL (the key is checked there): a prompt 503 while it is away or
  // the schema is not migrated yet, not a request that waits for a connection.
  if (deps.postgresWatch) app.use('/v1', unavailableWhileDown([deps.postgresWatch], 'the database'));
  const schema = deps.schema;
  if (schema)
    app.use('/v1', (_req, res, next) => {
      if (schema.migrated) return next();
      res.setHeader('retry-after', '5');
      sendApiError(res, 503, 'unavailable', 'starting: the database schema is not ready yet; retry later');
    });
  // Every /v1 route needs a key: identified once here; failed authentications are limited by address
  // and key tried (never a request with a good key), then refused.
  app.use('/v1', identifyCaller(pool), limiters.authFailures, requireCaller, limiters.perCaller);
  app.use(
    catalogueRouter({
      pool,
      // A plain secret signs and checks as the unnamed key (ingest/impression.ts).
      mintImpression: impressionMinter(keys, deps.impressionTtlSeconds ?? config.ADCLICK_IMPRESSION_TTL_S),
      now: deps.now,
    }),
  );
  app.use('/v1', express.json({ limit: '16kb' }));
  app.use(
    createServingRouter({
      pool,
      speedStore,
      startBackfill: temporalBackfill(deps.temporalClient),
      speedTimeoutMs: deps.speedTimeoutMs,
      now: deps.now,
    }),
  );
  app.use(
    opsRouter({
      reader: deps.ops ?? opsStatusReader(pool, deps.temporalClient, redis),
      temporalUiUrl: `http://${config.HOST}:${config.TEMPORAL_UI_PORT}`,
      namespace: config.TEMPORAL_NAMESPACE,
    }),
  );
  app.use((_req, res) => sendApiError(res, 404, 'not_found', 'no such route'));
  app.use(apiErrorHandler('api'));
  return app;
}

/**
 * The operators' status over this process's stores: the two consumer groups of the clicks topic, the
 * spool and stack folders' disks, and Redis's memory when given its client. Kafka's admin client connects on first use and again after a failure.
 */
export function opsStatusReader(pool: pg.Pool, temporalClient?: Client, redis?: Redis): OpsStatusReader {
  let admin: Promise<Admin> | undefined;
  let temporal: Promise<Client> | undefined = temporalClient && Promise.resolve(temporalClient);
  return new OpsStatusReader({
    pool,
    kafkaAdmin: () =>
      (admin ??= (async () => {
        const a = createKafka('adclick-ops', { quiet: true }).admin();
        await a.connect();
        return a;
      })().catch((e: unknown) => {
        admin = undefined;
        throw e;
      })),
    temporal: () =>
      (temporal ??= createTemporalClient().catch((e: unknown) => {
        temporal = undefined;
        throw e;
      })),
    consumers: [
      { group: config.ARCHIVER_GROUP_ID, topic: config.KAFKA_CLICKS_TOPIC },
      { group: config.SPEED_CONSUMER_GROUP, topic: config.KAFKA_CLICKS_TOPIC },
    ],
    disks: { spool: config.ADCLICK_SPOOL_DIR, stack: config.ADCLICK_STACK_DIR },
    ...(redis && { redis }),
    lookbackMs: 7 * 24 * 3_600_000,
    rawRetentionMs: config.BATCH_RAW_RETENTION_DAYS * 24 * 3_600_000,
  });
}

let sharedRedis: Redis | undefined;
/** One Redis client per process for the rate limits of every app it builds (connects in the background). */
function rateLimitRedis(): Redis {
  if (!sharedRedis) {
    sharedRedis = createRedis();
    sharedRedis.connect().catch(() => undefined); // reconnects by itself; limits pass while it is away
  }
  return sharedRedis;
}

/** Starts the backfill workflow of a window (idempotent per window), connecting to Temporal lazily. */
function temporalBackfill(given?: Client): StartBackfill {
  let client: Promise<Client> | undefined = given && Promise.resolve(given);
  return async ({ from, to }) => {
    client ??= createTemporalClient().catch((e: unknown) => {
      client = undefined;
      throw e;
    });
    return startBackfill(await client, { from: isoSeconds(from), to: isoSeconds(to) });
  };
}

/** Listens on `port` (0: any free port) and resolves with the base URL. */
export async function listen(
  app: Express,
  port: number,
  host: string,
): Promise<{ server: Server; url: string }> {
  const server = app.listen(port, host);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  server.keepAliveTimeout = 65_000; // the click process's proxy holds connections open
  const { address, port: bound } = server.address() as AddressInfo;
  return { server, url: `http://${address.includes(':') ? `[${address}]` : address}:${bound}` };
}

async function main(): Promise<void> {
  const log = (m: string): void => console.error(`[api] ${m}`);
  // Listens at once, also while PostgreSQL is away: /readyz and the 503s say so until it is back.
  const pool = createPool(10, { statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS });
  const schema = migrateWhenReachable(pool, { log });
  const postgresWatch = watchDependency('postgres', () => pool.query('select 1'), { log });
  const speedStore = createSpeedStore();
  // Ad changes to the click processes' replicas (one relay active among the API processes).
  const relay = startCatalogueRelay({
    pool,
    kafka: createKafka('adclick-catalogue-relay'),
    topic: config.ADCLICK_AD_CHANGES_TOPIC,
  });
  // The rate limits' Redis, connected before the first request (they pass requests while it is away).
  const redis = createRedis();
  await redis
    .connect()
    .catch((e: Error) =>
      console.error(`[api] Redis not reachable yet (${e.message}); rate limits wait for it`),
    );
  // Its memory is the click path's too (the first-click keys): the same REDIS_URL.
  const ops = opsStatusReader(pool, undefined, redis);
  registerOpsMetrics({
    registry,
    reader: ops,
    hourFinalDeadlineSeconds: config.OPS_HOUR_FINAL_DEADLINE_MINUTES * 60,
  });
  const { server, url } = await listen(
    createApiApp({ pool, speedStore, redis, postgresWatch, schema, ops }),
    config.API_PORT,
    config.HOST,
  );
  console.log(`[api] listening on ${url} (speed store: ${config.SPEED_STORE})`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    schema.stop();
    postgresWatch.stop();
    server.close();
    server.closeIdleConnections();
    redis.disconnect();
    void Promise.allSettled([speedStore.close(), relay.stop().then(() => pool.end())]).finally(() =>
      process.exit(0),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: Error) => {
    console.error(`[api] failed to start: ${e.stack ?? e.message}`);
    process.exit(1);
  });
}
