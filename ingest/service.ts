// One click service instance: Redis dedup, Kafka click log with its spool, the catalogue replica
// (ingest/catalogue-replica.ts) behind the ad cache, and the lean click handler on one HTTP server,
// beside /healthz, /readyz and /metrics. PostgreSQL is needed only for the signed-click fallback
// and the progress reports: the service starts, serves and is ready without it. Any other
// request goes to `fallback` (apps/click.ts: the proxy to the API process). It reads no
// configuration and builds no client: apps/click-service.ts does both and hands them in (one per
// worker, each reading the replica its primary feeds; tests with unique topics and spool folders);
// a service given no replica feeds its own.
import { randomUUID } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Server } from 'node:http';
import express, { type RequestHandler } from 'express';
import type { Admin, Kafka } from 'kafkajs';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import { healthRouter, watchDependency } from '../common/health.js';
import { requestId, sendApiError } from '../common/http-errors.js';
import { securityHeaders } from '../common/security-headers.js';
import { AdCache, pgAdLoader } from './ad-cache.js';
import { startCatalogueFeed, type CatalogueFeed } from './catalogue-feed.js';
import { CatalogueReplica, registerReplicaGauges, replicaReady } from './catalogue-replica.js';
import { createClickHandler } from './click-handler.js';
import { ClickLog, type ClickLogOptions } from './click-log.js';
import { DEFAULT_DEDUP_BREAKER, redisDedup, redisReady } from './dedup.js';
import { createHttpServer } from './http-server.js';
import type { SigningKeys } from './impression.js';
import { clickMetrics, type ClickMetrics } from './metrics.js';
import { startProgressReports } from './progress-report.js';
import { sleep } from '../common/wait.js';

/** The service's settings, every one given (apps/click-service.ts reads them from the configuration). */
export interface ClickServiceSettings {
  port: number;
  host: string;
  salts: number;
  redisDeadlineMs: number;
  /** How long a Redis lookup waits to be batched with others (ms). */
  redisLookupBatchMs: number;
  /** Plain click requests read by the click front (ingest/click-front.ts) instead of node:http. */
  clickFront: boolean;
  /** Connections the kernel queues until they are accepted (listen's backlog, capped by somaxconn). */
  listenBacklog: number;
  /** Proxies in front that set X-Forwarded-For: a click's address is that many hops from the right. */
  trustedProxyHops: number;
  /** How long start waits for Redis before it listens anyway, failing clicks open until Redis is up. */
  redisStartWaitMs: number;
  /**
   * Failure drills only (0 in production): added to Date.now() where a click is stamped and its
   * expiry checked, so drill traffic lands in hours that can be finalized.
   */
  clockOffsetMs: number;
  adCacheSize: number;
  /** The deadline of the catalogue fallback lookup in PostgreSQL. */
  catalogueFallbackDeadlineMs: number;
  /** How often progress is reported to the batch layer (ingest/progress-report.ts); 0 = never. */
  progressReportMs: number;
  progressMarginMs: number;
  /** Where a service that feeds its own replica reads the catalogue's changes, and how long it waits for them. */
  catalogueTopic: string;
  catalogueStartWaitMs: number;
}

/** What the service is built from: its clients, the click log's options and its settings. */
export interface ClickServiceDeps {
  pool: pg.Pool;
  /** The catalogue feed's client, when the service feeds its own replica (the click log has its own in `clickLog`). */
  kafka: Kafka;
  redis: Redis;
  /** Where Redis is, for the log line when it does not answer at start. */
  redisAddress: string;
  signingKeys: SigningKeys;
  clickLog: ClickLogOptions;
  settings: ClickServiceSettings;
  /**
   * The host's catalogue replica, fed by another process (apps/click.ts: the primary). Absent: the
   * service opens one at `replicaPath` (default: a fresh temporary folder) and feeds it itself from
   * `settings.catalogueTopic`, waiting up to `settings.catalogueStartWaitMs` for it before it listens.
   */
  replica?: CatalogueReplica;
  replicaPath?: string;
  /** Every request that is neither a click nor a health or metrics route (default: 404). */
  fallback?: RequestHandler;
  /** Where /metrics gets its text (apps/click.ts: summed over the cluster's workers). */
  metricsText?: () => Promise<string>;
  log?: (message: string) => void;
}

export interface ClickService {
  server: Server;
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  clickLog: ClickLog;
  /** Stops accepting, answers the requests in flight, flushes the click log, closes what it opened (not the clients it was given). */
  close(): Promise<void>;
}

/** Listens on the settings' port with their backlog (ADCLICK_CLICK_LISTEN_BACKLOG, common/config.ts). */
function listen(server: Server, s: ClickServiceSettings): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: s.port, host: s.host, backlog: s.listenBacklog }, () => resolve());
  });
}

export async function runClickService(deps: ClickServiceDeps): Promise<ClickService> {
  const { pool, redis, settings } = deps;
  const metrics = clickMetrics();
  const redisUp = redisReady(redis, settings.redisStartWaitMs);
  const clickLog = await ClickLog.open({ metrics, ...deps.clickLog });
  if (!(await redisUp))
    (deps.log ?? console.warn)(
      `[click] Redis at ${deps.redisAddress} is not answering: clicks fail open (logged valid, ` +
        'counted in adclick_redis_fail_open_total) until it does',
    );
  const catalogue = await openCatalogue(deps, metrics);
  const now = clickClock(settings.clockOffsetMs);
  const progress =
    settings.progressReportMs > 0
      ? startProgressReports({
          pool,
          processId: `${hostname()}:${resolve(deps.clickLog.spoolPath)}`,
          topic: deps.clickLog.topic,
          clickLog,
          clock: now,
          intervalMs: settings.progressReportMs,
          marginMs: settings.progressMarginMs,
          log: deps.log ?? ((m) => console.error(`[click] ${m}`)),
        })
      : undefined;
  const click = createClickHandler({
    ads: catalogue.ads,
    dedup: redisDedup(redis, settings.redisDeadlineMs, settings.redisLookupBatchMs, {
      ...DEFAULT_DEDUP_BREAKER,
      onOpen(open) {
        metrics.redisBreakerOpen.set(open ? 1 : 0);
        (deps.log ?? console.warn)(
          open
            ? `[click] Redis kept missing the first-click deadline for ${DEFAULT_DEDUP_BREAKER.spanMs} ms: ` +
                'checks fail open at once (adclick_redis_breaker_open) until a probe finds it answering'
            : '[click] Redis answers the first-click check again',
        );
      },
    }),
    clickLog,
    signingKeys: deps.signingKeys,
    salts: settings.salts,
    metrics,
    now,
    trustedProxyHops: settings.trustedProxyHops,
  });

  const kafkaAdmin = deps.kafka.admin();
  const app = express();
  app.disable('x-powered-by');
  app.use(requestId, securityHeaders());
  const health = healthRoutes(deps, catalogue.replica, kafkaAdmin);
  app.use(health.router);
  app.use(deps.fallback ?? ((_req, res) => sendApiError(res, 404, 'not_found', 'no such route')));

  const { server, front } = createHttpServer(click, app, { front: settings.clickFront });
  await listen(server, settings);
  const { address, port } = server.address() as AddressInfo;

  let closed: Promise<void> | undefined;
  return {
    server,
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}`,
    clickLog,
    close: () =>
      (closed ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        front?.closeIdle();
        await Promise.race([stopped, sleep(5000)]);
        server.closeAllConnections();
        front?.closeAll();
        health.stop();
        await clickLog.close();
        await progress?.stop();
        await kafkaAdmin.disconnect().catch(() => undefined);
        await catalogue.close();
      })()),
  };
}

interface Catalogue {
  replica: CatalogueReplica;
  ads: AdCache;
  close(): Promise<void>;
}

/** The ad cache over the replica it is given, or over one of its own that it feeds (see ClickServiceDeps). */
async function openCatalogue(deps: ClickServiceDeps, metrics: ClickMetrics): Promise<Catalogue> {
  const { settings } = deps;
  const ownReplica = !deps.replica;
  const replica =
    deps.replica ??
    CatalogueReplica.open(deps.replicaPath ?? join(tmpdir(), `adclick-catalogue-${randomUUID()}`));
  const feed: CatalogueFeed | undefined = ownReplica
    ? startCatalogueFeed({
        replica,
        kafka: deps.kafka,
        topic: settings.catalogueTopic,
        pool: deps.pool,
        log: deps.log,
      })
    : undefined;
  if (feed) await Promise.race([feed.caughtUp, sleep(settings.catalogueStartWaitMs)]);
  registerReplicaGauges(replica);
  const cacheCounters = {
    hit: metrics.adCache.labels('hit'),
    negative_hit: metrics.adCache.labels('negative_hit'),
    miss: metrics.adCache.labels('miss'),
  };
  const ads = new AdCache(replica, pgAdLoader(deps.pool, settings.catalogueFallbackDeadlineMs), {
    maxEntries: settings.adCacheSize,
    fallbackDeadlineMs: settings.catalogueFallbackDeadlineMs,
    onLookup: (result) => cacheCounters[result].inc(),
  });
  return {
    replica,
    ads,
    close: async () => {
      await feed?.stop();
      if (ownReplica) await replica.close();
    },
  };
}

/**
 * Ready when the replica has caught up and the spool is writable: every click can then be answered
 * and kept. Kafka (→ spool), Redis (→ fail open) and PostgreSQL (→ replica) are listed, but their
 * absence does not take the process out of a load balancer.
 */
function healthRoutes(
  deps: ClickServiceDeps,
  replica: CatalogueReplica,
  kafkaAdmin: Admin,
): { router: express.Router; stop(): void } {
  // Kafka, PostgreSQL and Redis are checked in the background, and /readyz answers from the last
  // check: a hung dependency must not hold the load balancer's probe (it is informational anyway).
  const watches = [
    watchDependency('kafka', kafkaProbe(kafkaAdmin)),
    watchDependency('postgres', () => deps.pool.query('select 1')),
    watchDependency('redis', () => deps.redis.ping()),
  ];
  const router = healthRouter({
    probes: {
      catalogue: async () => {
        const r = replicaReady(replica.status(), Date.now());
        if (!r.ready) throw new Error(`catalogue replica ${r.state}`);
      },
      spool: () => access(dirname(deps.clickLog.spoolPath), fsConstants.W_OK),
    },
    informational: Object.fromEntries(watches.map((w) => [w.name, w.probe])),
    metrics: deps.metricsText,
  });
  return { router, stop: () => watches.forEach((w) => w.stop()) };
}

/** Kafka answers: the admin client connects once, then every probe asks for the cluster. */
function kafkaProbe(admin: Admin): () => Promise<unknown> {
  let connected: Promise<void> | undefined;
  return async () => {
    connected ??= admin.connect().catch((e: unknown) => {
      connected = undefined;
      throw e;
    });
    await connected;
    return admin.describeCluster();
  };
}

/** The click path's clock: the real one unless a failure drill shifts it (ADCLICK_CLOCK_OFFSET_MS). */
function clickClock(offsetMs: number): () => number {
  return offsetMs === 0 ? Date.now : () => Date.now() + offsetMs;
}
