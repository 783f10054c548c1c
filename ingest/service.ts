// One click service instance: Redis dedup, Kafka click log with its spool, the catalogue replica
// (ingest/catalogue-replica.ts) behind the ad cache, and the lean click handler on one HTTP server,
// beside /healthz, /readyz and /metrics. PostgreSQL is needed only for the signed-click fallback
// and the progress reports: the service starts, serves and is ready without it. Any other
// request goes to `fallback` (apps/click.ts: the proxy to the API process). apps/click.ts runs one
// per core, each reading the replica its primary feeds; tests start their own with unique topics,
// spool folders and injected clients, and a service given no replica feeds its own.
import { randomUUID } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Server } from 'node:http';
import express, { type RequestHandler } from 'express';
import type { Admin, Kafka } from 'kafkajs';
import type pg from 'pg';
import type { ClickEventEncoding } from '../common/click-event.js';
import { config } from '../common/config.js';
import { createPool } from '../common/db.js';
import { healthRouter } from '../common/health.js';
import { requestId, sendApiError } from '../common/http-errors.js';
import { securityHeaders } from '../common/security-headers.js';
import { createKafka } from '../common/kafka.js';
import { AdCache, pgAdLoader } from './ad-cache.js';
import { startCatalogueFeed } from './catalogue-feed.js';
import { CatalogueReplica, registerReplicaGauges, replicaReady } from './catalogue-replica.js';
import { createClickHandler } from './click-handler.js';
import { ClickLog } from './click-log.js';
import { createClickRedis, redisDedup, redisReady } from './dedup.js';
import { createHttpServer } from './http-server.js';
import { configuredSigningKeys, signingKeys, type SigningKeys } from './impression.js';
import { clickMetrics } from './metrics.js';
import { startProgressReports } from './progress-report.js';

export interface ClickServiceOptions {
  port?: number;
  host?: string;
  topic?: string;
  spoolPath: string;
  kafka?: Kafka;
  redisUrl?: string;
  pool?: pg.Pool;
  /** Default: ADCLICK_SIGNING_KEYS and ADCLICK_SIGNING_SECRET. A plain secret: that one key, no key id. */
  signingKeys?: SigningKeys | string;
  salts?: number;
  deadlineMs?: number;
  lingerMs?: number;
  batchMax?: number;
  encoding?: ClickEventEncoding;
  lanes?: number;
  redisDeadlineMs?: number;
  /** How long start waits for Redis before it listens anyway, failing clicks open until Redis is up. */
  redisStartWaitMs?: number;
  /**
   * Failure drills only (config ADCLICK_CLOCK_OFFSET_MS, 0 in production): added to Date.now() where
   * a click is stamped and its expiry checked, so drill traffic lands in hours that can be finalized.
   */
  clockOffsetMs?: number;
  /**
   * The host's catalogue replica, fed by another process (apps/click.ts: the primary). Absent: the
   * service opens one at `replicaPath` (default: a fresh temporary folder) and feeds it itself from
   * `catalogueTopic`, waiting up to `catalogueStartWaitMs` for it to catch up before it listens.
   */
  replica?: CatalogueReplica;
  replicaPath?: string;
  catalogueTopic?: string;
  catalogueStartWaitMs?: number;
  /** Every request that is neither a click nor a health or metrics route (default: 404). */
  fallback?: RequestHandler;
  /** How often progress is reported to the batch layer (ingest/progress-report.ts); 0 = never. */
  progressReportMs?: number;
  /** Where /metrics gets its text (apps/click.ts: summed over the cluster's workers). */
  metricsText?: () => Promise<string>;
  log?: (message: string) => void;
}

export interface ClickService {
  server: Server;
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  clickLog: ClickLog;
  /** Stops accepting, answers the requests in flight, flushes the click log, closes clients. */
  close(): Promise<void>;
}

export async function startClickService(opts: ClickServiceOptions): Promise<ClickService> {
  const ownPool = !opts.pool;
  // The fallback lookup has its own deadline (ADCLICK_CATALOGUE_FALLBACK_DEADLINE_MS); the reports and
  // the feed's snapshot get the long-running processes' statement deadline.
  const pool = opts.pool ?? createPool(10, { statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS });
  const kafka = opts.kafka ?? createKafka('adclick-ingest');
  const redis = createClickRedis(opts.redisUrl ?? config.REDIS_URL);
  const metrics = clickMetrics();
  const keys = opts.signingKeys ?? configuredSigningKeys();
  const signing = typeof keys === 'string' ? signingKeys(undefined, keys) : keys;

  const redisUp = redisReady(redis, opts.redisStartWaitMs ?? 3000);
  const topic = opts.topic ?? config.KAFKA_CLICKS_TOPIC;
  const clickLog = await ClickLog.open({
    kafka,
    topic,
    spoolPath: opts.spoolPath,
    deadlineMs: opts.deadlineMs ?? config.ADCLICK_PRODUCE_DEADLINE_MS,
    lingerMs: opts.lingerMs ?? config.ADCLICK_PRODUCE_LINGER_MS,
    batchMax: opts.batchMax ?? config.ADCLICK_PRODUCE_BATCH_MAX,
    encoding: opts.encoding ?? config.ADCLICK_CLICK_EVENT_ENCODING,
    lanes: opts.lanes ?? config.ADCLICK_PRODUCE_LANES,
    compression: config.ADCLICK_PRODUCE_COMPRESSION,
    metrics,
    log: opts.log,
  });
  if (!(await redisUp))
    (opts.log ?? console.warn)(
      `[click] Redis at ${new URL(opts.redisUrl ?? config.REDIS_URL).host} is not answering: clicks fail open (logged valid, ` +
        'counted in adclick_redis_fail_open_total) until it does',
    );
  const cacheCounters = {
    hit: metrics.adCache.labels('hit'),
    negative_hit: metrics.adCache.labels('negative_hit'),
    miss: metrics.adCache.labels('miss'),
  };
  const ownReplica = !opts.replica;
  const replica =
    opts.replica ??
    CatalogueReplica.open(opts.replicaPath ?? join(tmpdir(), `adclick-catalogue-${randomUUID()}`));
  const feed = ownReplica
    ? startCatalogueFeed({
        replica,
        kafka,
        topic: opts.catalogueTopic ?? config.ADCLICK_AD_CHANGES_TOPIC,
        pool,
        log: opts.log,
      })
    : undefined;
  if (feed)
    await Promise.race([
      feed.caughtUp,
      new Promise((r) => setTimeout(r, opts.catalogueStartWaitMs ?? 10_000)),
    ]);
  registerReplicaGauges(replica);
  const fallbackDeadlineMs = config.ADCLICK_CATALOGUE_FALLBACK_DEADLINE_MS;
  const ads = new AdCache(replica, pgAdLoader(pool, fallbackDeadlineMs), {
    maxEntries: config.ADCLICK_AD_CACHE_SIZE,
    fallbackDeadlineMs,
    onLookup: (result) => cacheCounters[result].inc(),
  });
  const now = clickClock(opts.clockOffsetMs ?? config.ADCLICK_CLOCK_OFFSET_MS);
  const reportMs = opts.progressReportMs ?? config.ADCLICK_PROGRESS_REPORT_MS;
  const progress =
    reportMs > 0
      ? startProgressReports({
          pool,
          processId: `${hostname()}:${resolve(opts.spoolPath)}`,
          topic,
          clickLog,
          clock: now,
          intervalMs: reportMs,
          marginMs: config.ADCLICK_PROGRESS_MARGIN_MS,
          log: opts.log ?? ((m) => console.error(`[click] ${m}`)),
        })
      : undefined;
  const click = createClickHandler({
    ads,
    dedup: redisDedup(
      redis,
      opts.redisDeadlineMs ?? config.ADCLICK_REDIS_DEADLINE_MS,
      config.ADCLICK_LOOKUP_BATCH_MS,
    ),
    clickLog,
    signingKeys: signing,
    salts: opts.salts ?? config.ADCLICK_KEY_SALTS,
    metrics,
    now,
  });

  const kafkaAdmin = kafka.admin();
  const app = express();
  app.disable('x-powered-by');
  app.use(requestId, securityHeaders());
  app.use(
    healthRouter({
      // Ready when the replica has caught up and the spool is writable: every click can then be
      // answered and kept. Kafka (→ spool), Redis (→ fail open) and PostgreSQL (→ replica) are
      // listed, but their absence does not take the process out of a load balancer.
      probes: {
        catalogue: async () => {
          const r = replicaReady(replica.status(), Date.now());
          if (!r.ready) throw new Error(`catalogue replica ${r.state}`);
        },
        spool: () => access(dirname(opts.spoolPath), fsConstants.W_OK),
      },
      informational: {
        kafka: kafkaProbe(kafkaAdmin),
        postgres: () => pool.query('select 1'),
        redis: () => redis.ping(),
      },
      metrics: opts.metricsText,
    }),
  );
  app.use(opts.fallback ?? ((_req, res) => sendApiError(res, 404, 'not_found', 'no such route')));

  const server = createHttpServer(click, app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? config.PORT, opts.host ?? config.HOST, () => resolve());
  });
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
        await Promise.race([stopped, new Promise((r) => setTimeout(r, 5000))]);
        server.closeAllConnections();
        await clickLog.close();
        await progress?.stop();
        await kafkaAdmin.disconnect().catch(() => undefined);
        redis.disconnect();
        await feed?.stop();
        if (ownReplica) await replica.close();
        if (ownPool) await pool.end();
      })()),
  };
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
