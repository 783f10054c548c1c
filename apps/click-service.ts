// The click service's wiring: reads the configuration, builds the clients (PostgreSQL pool, Kafka,
// Redis) and starts one click service (ingest/service.ts) with them; its click log's options come
// from the one builder in apps/click-options.ts.
import type { RequestHandler } from 'express';
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import type { ClickEventEncoding } from '../common/click-event.js';
import { config } from '../common/config.js';
import { createPool } from '../common/db.js';
import { createKafka } from '../common/kafka.js';
import type { CatalogueReplica } from '../ingest/catalogue-replica.js';
import type { ClickLogOptions } from '../ingest/click-log.js';
import { createClickRedis } from '../ingest/dedup.js';
import { configuredSigningKeys, signingKeys, type SigningKeys } from '../ingest/impression.js';
import { kafkajsLanes } from '../ingest/lane-producers.js';
import { clickLogOptions } from './click-options.js';
import { runClickService, type ClickService, type ClickServiceSettings } from '../ingest/service.js';

export type { ClickService };

/** A click service's options; whatever is not given comes from the configuration (tests give their own). */
export interface ClickServiceOptions {
  port?: number;
  host?: string;
  topic?: string;
  spoolPath: string;
  /** The caller's Kafka client: the service's, its click log's lanes included (else they follow ADCLICK_KAFKA_PRODUCER). */
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
  /** Proxies in front that set X-Forwarded-For (default: ADCLICK_CLICK_TRUSTED_PROXY_HOPS). */
  trustedProxyHops?: number;
  /** How long start waits for Redis before it listens anyway, failing clicks open until Redis is up. */
  redisStartWaitMs?: number;
  /** Failure drills only (config ADCLICK_CLOCK_OFFSET_MS, 0 in production): see ClickServiceSettings. */
  clockOffsetMs?: number;
  /** The host's catalogue replica, fed by another process; absent: see ClickServiceDeps. */
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
  /** Told of every change of the click log's state (tests). */
  onTransition?: ClickLogOptions['onTransition'];
  log?: (message: string) => void;
}

/** The service's settings: those given, the configuration's for the rest. */
function serviceSettings(opts: ClickServiceOptions): ClickServiceSettings {
  return {
    port: opts.port ?? config.PORT,
    host: opts.host ?? config.HOST,
    salts: opts.salts ?? config.ADCLICK_KEY_SALTS,
    redisDeadlineMs: opts.redisDeadlineMs ?? config.ADCLICK_REDIS_DEADLINE_MS,
    redisLookupBatchMs: config.ADCLICK_LOOKUP_BATCH_MS,
    clickFront: config.ADCLICK_CLICK_HTTP === 'front',
    listenBacklog: config.ADCLICK_CLICK_LISTEN_BACKLOG,
    trustedProxyHops: opts.trustedProxyHops ?? config.ADCLICK_CLICK_TRUSTED_PROXY_HOPS,
    redisStartWaitMs: opts.redisStartWaitMs ?? 3000,
    clockOffsetMs: opts.clockOffsetMs ?? config.ADCLICK_CLOCK_OFFSET_MS,
    adCacheSize: config.ADCLICK_AD_CACHE_SIZE,
    catalogueFallbackDeadlineMs: config.ADCLICK_CATALOGUE_FALLBACK_DEADLINE_MS,
    progressReportMs: opts.progressReportMs ?? config.ADCLICK_PROGRESS_REPORT_MS,
    progressMarginMs: config.ADCLICK_PROGRESS_MARGIN_MS,
    catalogueTopic: opts.catalogueTopic ?? config.ADCLICK_AD_CHANGES_TOPIC,
    catalogueStartWaitMs: opts.catalogueStartWaitMs ?? 10_000,
  };
}

/** Starts a click service; its close also closes the clients built here (not those given). */
export async function startClickService(opts: ClickServiceOptions): Promise<ClickService> {
  const ownPool = !opts.pool;
  // The fallback lookup has its own deadline (ADCLICK_CATALOGUE_FALLBACK_DEADLINE_MS); the reports and
  // the feed's snapshot get the long-running processes' statement deadline.
  const pool = opts.pool ?? createPool(10, { statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS });
  const kafka = opts.kafka ?? createKafka('adclick-ingest');
  const redisUrl = opts.redisUrl ?? config.REDIS_URL;
  const redis = createClickRedis(redisUrl);
  const release = async (): Promise<void> => {
    redis.disconnect();
    if (ownPool) await pool.end();
  };
  const keys = opts.signingKeys ?? configuredSigningKeys();
  try {
    const service = await runClickService({
      pool,
      kafka,
      redis,
      redisAddress: new URL(redisUrl).host,
      signingKeys: typeof keys === 'string' ? signingKeys(undefined, keys) : keys,
      clickLog: clickLogOptions(kafka, opts.spoolPath, {
        topic: opts.topic,
        deadlineMs: opts.deadlineMs,
        lingerMs: opts.lingerMs,
        batchMax: opts.batchMax,
        encoding: opts.encoding,
        lanes: opts.lanes,
        // A Kafka client given by the caller (a test's gated one) carries the lanes too; otherwise
        // ADCLICK_KAFKA_PRODUCER picks their client.
        laneProducers: opts.kafka
          ? kafkajsLanes(opts.kafka, opts.log ?? ((m) => console.error(`[click-log] ${m}`)))
          : undefined,
        log: opts.log,
        onTransition: opts.onTransition,
      }),
      settings: serviceSettings(opts),
      replica: opts.replica,
      replicaPath: opts.replicaPath,
      fallback: opts.fallback,
      metricsText: opts.metricsText,
      log: opts.log,
    });
    let closed: Promise<void> | undefined;
    return { ...service, close: () => (closed ??= service.close().then(release)) };
  } catch (e) {
    await release().catch(() => undefined);
    throw e;
  }
}
