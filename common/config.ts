// The one place that reads the environment. Every address, port, key and tuning knob of the app
// and of the local stack is validated here once and handed out typed; the defaults make a local
// run work with no setup, and each can be overridden to point at a remote cluster instead.
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { CLICK_EVENT_ENCODINGS } from './click-event.js';
import { isProduction, productionProblems, productionRefusal } from './production.js';

const port = z.coerce.number().int().min(1).max(65535);
const positiveInt = z.coerce.number().int().positive();
const emptyAsUnset = (v: unknown): unknown => (v === '' ? undefined : v);

const schema = z.object({
  // HTTP
  // The click process listens on PORT (the public base URL) and hands every request that is not a
  // click to the API process at API_URL (default: API_PORT on this host).
  PORT: port.default(8080),
  API_PORT: port.default(8081),
  API_URL: z.string().url().optional(),
  HOST: z.string().default('127.0.0.1'),
  // Keys and secrets (dev defaults only; set real ones in production)
  ADCLICK_ADMIN_KEY: z.string().min(8).default('dev-admin-key'),
  // Empty counts as unset (docker-compose.yml passes it through, usually empty).
  ADCLICK_SIGNING_SECRET: z.preprocess(
    emptyAsUnset,
    z.string().min(16).default('dev-signing-secret-change-me'),
  ),
  // --- Exposure: signing keys, rate limits, proxies (README "Running in production") ---
  // Signing keys by id, current first: "k2:secret2,k1:secret1". New impressions are signed with the
  // first and name it (`kid`); clicks are checked with the key they name, so a previous key stays
  // valid until its impressions expire. A click URL without `kid` is checked with
  // ADCLICK_SIGNING_SECRET (the single-key setting, still accepted), else with the current key.
  ADCLICK_SIGNING_KEYS: z.preprocess(
    emptyAsUnset,
    z
      .string()
      .regex(/^\s*[A-Za-z0-9_-]{1,16}:[^,]{16,}(\s*,\s*[A-Za-z0-9_-]{1,16}:[^,]{16,})*\s*$/, {
        message: 'must be "id:secret,id:secret" (id: 1-16 of A-Z a-z 0-9 _ -; secret: 16+ characters)',
      })
      .optional(),
  ),
  // Requests per window; a request over the limit gets 429 with Retry-After. Counted in Redis, so
  // the limits hold across API replicas. Failed authentications count per client address.
  ADCLICK_RATE_LIMIT_WINDOW_S: positiveInt.default(60),
  ADCLICK_RATE_LIMIT_ADVERTISER: positiveInt.default(600),
  ADCLICK_RATE_LIMIT_ADMIN: positiveInt.default(6000),
  // Per impression key (an ad server): 30,000 requests a minute = 500 a second, i.e. 500,000
  // impressions a second through POST /v1/impressions/batch (1,000 a request), above the documented
  // target (docs/impressions.md).
  ADCLICK_RATE_LIMIT_MINTER: positiveInt.default(30_000),
  ADCLICK_RATE_LIMIT_AUTH_FAILURES: positiveInt.default(20),
  ADCLICK_RATE_LIMIT_AUTH_WINDOW_S: positiveInt.default(600),
  // Proxies in front of the API that set X-Forwarded-For (the click process's proxy, or nginx in
  // docker-compose.yml): the client address is taken that many hops from the right, no further.
  ADCLICK_TRUSTED_PROXY_HOPS: z.coerce.number().int().min(0).default(1),
  // Proxies in front of the click process that set X-Forwarded-For (nginx in docker-compose.yml):
  // a click's address (hashed into its ipHash) is taken that many hops from the right. 0 (npm start,
  // where clients reach the click process directly): the connection's own address, the header ignored.
  ADCLICK_CLICK_TRUSTED_PROXY_HOPS: z.coerce.number().int().min(0).default(0),
  // --- end exposure ---
  ADCLICK_IMPRESSION_TTL_S: positiveInt.default(24 * 3600),
  // Kafka
  KAFKA_BROKERS: z.string().default('127.0.0.1:9092'),
  KAFKA_CLICKS_TOPIC: z.string().default('clicks'),
  KAFKA_CLICKS_PARTITIONS: positiveInt.default(4),
  // The speed layer's count rows for Pinot. `minute_deltas` holds deltas (SPEED_PINOT_COUNTS); a topic
  // of cumulative rows (the form before, `minute_counts`) must never be read as deltas.
  KAFKA_MINUTE_COUNTS_TOPIC: z.string().default('minute_deltas'),
  // PostgreSQL
  DATABASE_URL: z.string().default('postgres://adclick:adclick@127.0.0.1:5432/adclick'),
  // Redis
  REDIS_URL: z.string().default('redis://127.0.0.1:6379'),
  // S3-compatible object store
  S3_ENDPOINT: z.string().url().default('http://127.0.0.1:9000'),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().default('adclick'),
  S3_ACCESS_KEY_ID: z.string().default('adclick'),
  S3_SECRET_ACCESS_KEY: z.string().default('adclick-dev-secret'),
  // Temporal
  TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_UI_PORT: port.default(8233),
  TEMPORAL_TASK_QUEUE: z.string().default('adclick-batch'),
  // Pinot
  PINOT_CONTROLLER_URL: z.string().url().default('http://127.0.0.1:9002'),
  PINOT_BROKER_URL: z.string().url().default('http://127.0.0.1:8099'),
  PINOT_ZK_PORT: port.default(2191),
  // The Pinot server's query and admin ports (local stack only; the app talks to the broker).
  PINOT_SERVER_PORT: port.default(8098),
  PINOT_SERVER_ADMIN_PORT: port.default(8097),
  SPEED_STORE: z.enum(['pinot', 'postgres']).default('pinot'),
  // Local stack: downloads and builds are cached outside the repository; runtime data, logs and
  // PIDs live in the checkout's .stack/ folder.
  ADCLICK_CACHE_DIR: z.string().default(join(homedir(), '.cache', 'adclick')),
  ADCLICK_STACK_DIR: z.string().default(resolve('.stack')),
  // --- Batch layer (archiver, compaction worker, schedules) ---
  // Key prefix inside S3_BUCKET for raw files and indexes ('' in production; tests use a unique one).
  BATCH_S3_PREFIX: z.string().default(''),
  ARCHIVER_GROUP_ID: z.string().default('adclick-archiver'),
  // A partition's buffer is written to S3 once it holds this many events or is this old (ms).
  ARCHIVER_FLUSH_EVENTS: positiveInt.default(100_000),
  ARCHIVER_FLUSH_MS: positiveInt.default(30_000),
  // How late (ms) an event may reach Kafka after its ts and still be in its hour's first compaction.
  ARCHIVER_WATERMARK_GRACE_MS: positiveInt.default(60_000),
  // Local scratch space for downloaded Parquet files (reused when an activity resumes).
  BATCH_WORK_DIR: z.string().default(join(tmpdir(), 'adclick-batch')),
  // Schedule ids are `<prefix>-compact-hourly` and `<prefix>-compact-daily` (apps/schedules.ts).
  BATCH_SCHEDULE_PREFIX: z.string().default('adclick'),
  // Failure drills only: the compaction activity pauses this long (ms) after its downloads, so a drill
  // (or the worker-kill test) can kill the worker in the middle of an activity. 0 in production.
  BATCH_FAULT_PAUSE_MS: z.coerce.number().int().min(0).default(0),
  // --- end batch layer ---
  // --- Click path (ingest/) ---
  // Key salts per ad on the clicks topic (rule 7: hot ads spread over up to this many partitions).
  ADCLICK_KEY_SALTS: positiveInt.default(8),
  // Who reads click requests off the socket: the click front (ingest/click-front.ts: plain click
  // requests without node:http's request and response objects, every other request to node:http),
  // or node:http for all (`node`).
  ADCLICK_CLICK_HTTP: z.enum(['front', 'node']).default('front'),
  // Connections the kernel holds for the click port until the process accepts them (listen's
  // backlog; Linux caps it at net.core.somaxconn). Node's default, 511, overflowed when a restarted
  // click process met its clients' connections all at once: the kernel dropped the rest, each waited
  // for a retransmitted SYN (1 s, 3 s, 7 s …), and clicks timed out (README, "twenty-first round").
  ADCLICK_CLICK_LISTEN_BACKLOG: positiveInt.default(4096),
  // Click service worker processes (node:cluster); 0 = one per CPU core.
  ADCLICK_CLICK_WORKERS: z.coerce.number().int().min(0).default(0),
  // Spool folder: clicks Kafka did not ack in time, replayed in order when it is back.
  ADCLICK_SPOOL_DIR: z.string().default(resolve('.stack', 'spool')),
  // How long a click waits for Kafka's ack before it is spooled instead (ms).
  ADCLICK_PRODUCE_DEADLINE_MS: positiveInt.default(300),
  // Producer batching: a batch leaves after this many ms or events, whichever comes first.
  ADCLICK_PRODUCE_LINGER_MS: z.coerce.number().int().min(0).default(5),
  ADCLICK_PRODUCE_BATCH_MAX: positiveInt.default(500),
  // Idempotent producers per click worker sending batches in parallel (kafkajs: one request each).
  ADCLICK_PRODUCE_LANES: positiveInt.default(2),
  // The Kafka client of the click log's lanes (ingest/lane-producers.ts): `platformatic`
  // (@platformatic/kafka: ~11-14 % less CPU per click than kafkajs; a send Kafka wrote part of is
  // sent again as the same request on the same producer, so Kafka drops the part it has), or
  // `kafkajs` (README "CPU per click, fourth round").
  ADCLICK_KAFKA_PRODUCER: z.enum(['kafkajs', 'platformatic']).default('platformatic'),
  // Compression of the click batches sent to Kafka. `none`: measured cheaper on one machine, where
  // bytes cost less than the CPU to pack them (README "Throughput on one machine").
  ADCLICK_PRODUCE_COMPRESSION: z.enum(['none', 'gzip']).default('none'),
  // How click processes write events to Kafka and the spool (docs/click-event.md): `binary` (layout 1,
  // ~60 bytes) or `json` (~170 bytes). Consumers read both; when upgrading from a version that only
  // reads JSON, start the upgraded consumers first, or keep `json` here until they run.
  ADCLICK_CLICK_EVENT_ENCODING: z.enum(CLICK_EVENT_ENCODINGS).default('binary'),
  // How long a click worker gathers the Redis first-click checks and the catalogue lookups of its
  // clicks before sending them as one call each (ms); 0 = those of one event-loop turn. Each round
  // trip costs a socket write and read on both sides, more than the work it carries. 3 rather than 1:
  // at 2,000 clicks/s a third fewer round trips (Redis's and, behind them, the log's sends), the
  // click process 17-22 % cheaper and the fault matrix's control tail no worse (docs/faults.md).
  ADCLICK_LOOKUP_BATCH_MS: z.coerce.number().int().min(0).default(3),
  // Redis dedup answer deadline (ms); past it the click fails open (counted as valid).
  ADCLICK_REDIS_DEADLINE_MS: positiveInt.default(50),
  // In-process ad cache of each click worker (entries) and how long an unknown id stays unknown (ms).
  ADCLICK_AD_CACHE_SIZE: positiveInt.default(200_000),
  ADCLICK_AD_NEGATIVE_TTL_MS: positiveInt.default(30_000),
  // The click process's catalogue replica (docs/catalogue-replica.md): its LMDB folder on this host,
  // written by the click primary and read by every click worker; the compacted topic of ad changes
  // it follows (written by the API process's relay); and the deadline of the PostgreSQL fallback of
  // a signed click on an ad the replica does not know yet (ms).
  ADCLICK_CATALOGUE_DIR: z.string().default(resolve('.stack', 'catalogue')),
  ADCLICK_AD_CHANGES_TOPIC: z.string().default('ad-changes'),
  ADCLICK_CATALOGUE_FALLBACK_DEADLINE_MS: positiveInt.default(100),
  // How often each click worker reports how far its clicks are in Kafka (docs/completeness.md), and
  // the stamp-to-log margin a report never claims (covers the Redis dedup deadline).
  ADCLICK_PROGRESS_REPORT_MS: positiveInt.default(5000),
  ADCLICK_PROGRESS_MARGIN_MS: positiveInt.default(5000),
  // --- Final means complete (batch layer, docs/completeness.md) ---
  // A click process silent for longer is not waited for: its hour is finalized and the late path
  // finalizes it again when its clicks arrive.
  FINALIZE_SILENCE_BOUND_MS: positiveInt.default(15 * 60_000),
  // How often the late path looks for raw files that arrived after their hour was finalized.
  LATE_PATH_EVERY_MINUTES: positiveInt.default(5),
  // How long raw Parquet is kept in S3 (days): the sweep and the late path look no further back.
  BATCH_RAW_RETENTION_DAYS: positiveInt.default(30),
  // Retention tiers of the counts (common/retention.ts; docs/operations.md "Retention"): minute rows
  // at least the API's 7-day minute range (a day partition more is kept), hour rows the API's 92-day
  // hour range, day rows years. Expiry drops whole time partitions (the retention schedule).
  BATCH_MINUTE_RETENTION_DAYS: z.coerce.number().int().min(7).default(8),
  BATCH_HOUR_RETENTION_DAYS: z.coerce.number().int().min(92).default(92),
  BATCH_DAY_RETENTION_YEARS: positiveInt.default(5),
  // --- Authoritative store (docs/store.md): where finalized counts live. `pinot`: one OFFLINE
  // segment per finalized hour in BATCH_PINOT_TABLE, pushed and served before the hour is recorded
  // final; hour state, revisions and adjustments stay in PostgreSQL either way.
  BATCH_STORE: z.enum(['postgres', 'pinot']).default('postgres'),
  BATCH_PINOT_TABLE: z.string().regex(/^\w+$/).default('batch_counts'),
  // Pinot's retention manager deletes the OFFLINE table's hours older than this (minute rows serve
  // every granularity, so this is the retention of all three tiers; the API answers 400 before it).
  BATCH_PINOT_RETENTION_DAYS: z.coerce.number().int().min(92).default(400),
  // Copies of each Pinot segment (OFFLINE and REALTIME tables): 2 on the local cluster (npm run cluster:up).
  PINOT_REPLICATION: positiveInt.default(1),
  // --- end authoritative store ---
  // --- Speed layer (speed-layer/) ---
  SPEED_CONSUMER_GROUP: z.string().default('adclick-speed-layer'),
  // Minutes behind the newest minute of a partition that stay open (their impression ids dedup).
  SPEED_OPEN_WINDOW_MINUTES: positiveInt.default(5),
  // Each partition's changed counts are committed at least this often (ms).
  SPEED_FLUSH_INTERVAL_MS: positiveInt.default(500),
  // Count rows per minute_counts message, for a Pinot table that unnests them (speed-layer/kafka-sink.ts;
  // a table made before keeps one row per message: docs/operations.md). 1: one row per message.
  SPEED_COUNT_ROWS_PER_MESSAGE: positiveInt.default(100),
  SPEED_LAYER_METRICS_PORT: port.default(9464),
  // Pinot table (REALTIME) over KAFKA_MINUTE_COUNTS_TOPIC, and how long it keeps minutes (days).
  // v2 rows carry the advertiser id (advertiser-wide reads): a new table, because Pinot's consuming
  // segments do not take a column added to a live schema (docs/operations.md, "Advertiser ids").
  // v3 (`minute_deltas`): rows are deltas, summed, with no upsert (SPEED_PINOT_COUNTS).
  SPEED_PINOT_TABLE: z.string().default('minute_deltas'),
  // What a count row says (speed-layer/kafka-sink.ts): `deltas`, the clicks a flush added, summed by
  // a plain table; `cumulative`, a part's running count, kept by a FULL upsert (the form before: its
  // primary-key map lives in Pinot's heap, ~270 bytes per (ad, salt, minute), ~80 MB a minute at
  // 10,000 clicks/s). Must match the table and its topic (docs/operations.md, "Count deltas").
  SPEED_PINOT_COUNTS: z.enum(['deltas', 'cumulative']).default('deltas'),
  SPEED_PINOT_RETENTION_DAYS: positiveInt.default(7),
  // Pinot's Kafka consumer of minute_counts (one per partition): a fetch waits for this many bytes
  // or this long, whichever comes first. Kafka's defaults: 64 KiB / 100 ms measured cheaper for
  // Pinot in some runs and dearer in others (README, "CPU per click, seventh round"). Applied when
  // a table is made.
  SPEED_PINOT_FETCH_MIN_BYTES: positiveInt.default(1),
  SPEED_PINOT_FETCH_MAX_WAIT_MS: positiveInt.default(500),
  // Rows a Pinot server holds in the speed table's consuming segments, over all the partitions it
  // consumes (Pinot's realtime.segment.flush.threshold.rows: a partition's segment commits at this
  // divided by the server's partitions). It bounds the server's heap: a consuming row holds 115 (Zipf
  // over 10M ads) to 260 (every row a distinct ad) bytes of it, mostly the ad-id inverted index, so
  // 2,000,000 rows is 230-520 MB of the local stack's 1.5 GB.
  // Pinot's size-based autotune (the table's form before) grew segments towards 50 MB, ~2M rows a
  // partition: ~920 MB for four, an out-of-memory exit after about half an hour at 10,000 clicks/s.
  // A commit costs Pinot about 1 s of CPU whatever its size, so segments are no smaller than needed
  // (README, "CPU per click, seventeenth round"). Set on the table when it is made, and on an
  // existing table at the speed layer's start (from the next segment each partition starts).
  SPEED_PINOT_CONSUMING_ROWS: positiveInt.default(2_000_000),
  // --- end speed layer ---
  // --- Failure drills: click clock offset ---
  // Added to Date.now() where the click service stamps a click and checks its expiry, and where the
  // simulator records ground truth minutes (tools/simulate.ts --clock-offset-ms defaults to it). A
  // negative offset (e.g. -2 h) lands drill traffic in past hours that can be finalized at once.
  // 0 in production: never set it there.
  ADCLICK_CLOCK_OFFSET_MS: z.coerce.number().int().default(0),
  // --- end failure drills ---
  // --- Topics and long-lived processes (common/kafka.ts, batch-layer/archiver.ts) ---
  // Copies of each partition of the app's topics, and how many must have an acks=all write before
  // it succeeds. A production cluster wants 3 and 2; the single-broker local stack keeps 1 and 1.
  // Applied by ensureTopics on every start (min.insync.replicas also to existing topics).
  KAFKA_REPLICATION_FACTOR: positiveInt.default(1),
  KAFKA_MIN_INSYNC_REPLICAS: positiveInt.default(1),
  // How long `clicks` keeps events (hours). The archiver and a speed-layer rebuild must read an
  // event within it; keep it well above ADCLICK_IMPRESSION_TTL_S. (minute_counts keeps
  // SPEED_PINOT_RETENTION_DAYS, the speed store's own retention.)
  KAFKA_CLICKS_RETENTION_HOURS: positiveInt.default(168),
  // How often every producer and consumer refreshes topic metadata (ms), i.e. how soon partitions
  // added to a live topic are used (kafkajs' own default is 5 minutes).
  KAFKA_METADATA_MAX_AGE_MS: positiveInt.default(30_000),
  // Events the archiver holds over all its partitions. At the bound it stops fetching until a flush
  // to S3 succeeds, so an S3 outage shows as consumer lag, not as memory.
  ARCHIVER_MAX_BUFFERED_EVENTS: positiveInt.default(400_000),
  // How the two consumer groups on `clicks` (speed layer, archiver) fetch: the broker answers a fetch
  // once it holds this many bytes for it, or after this many ms. Few large fetches cost the broker
  // and the consumers far less than many small ones; the wait adds at most that much to freshness.
  KAFKA_CONSUMER_MIN_BYTES: positiveInt.default(131_072),
  KAFKA_CONSUMER_MAX_WAIT_MS: positiveInt.default(100),
  // kafkajs 2.2.4's request queues re-check themselves every millisecond while idle (common/
  // kafkajs-idle-loop.ts); `fixed` schedules a check only while a request waits. `as-released`
  // keeps kafkajs' own behaviour (for comparison: the system bench's --before-env).
  KAFKAJS_REQUEST_QUEUE: z.enum(['fixed', 'as-released']).default('fixed'),
  // --- end topics and long-lived processes ---
  // --- Dependency outages (common/db.ts, common/health.ts, docs/dependencies.md) ---
  // PostgreSQL: how long a new connection may take, and how long one statement may run. The server
  // cancels a statement at its deadline; the client gives up a second later, also when the server
  // hangs and cannot cancel anything. Long-running processes use DATABASE_STATEMENT_TIMEOUT_MS;
  // batch jobs and tools (compaction, COPY imports) the long one; the click path's catalogue
  // fallback the short one.
  DATABASE_CONNECT_TIMEOUT_MS: positiveInt.default(3000),
  DATABASE_STATEMENT_TIMEOUT_MS: positiveInt.default(10_000),
  DATABASE_BATCH_STATEMENT_TIMEOUT_MS: positiveInt.default(30 * 60_000),
  DATABASE_CLICK_STATEMENT_TIMEOUT_MS: positiveInt.default(100),
  // Redis: a command not answered within this fails (each caller falls back: rate limits pass,
  // dedup fails open); the click path's first-click check has its own ADCLICK_REDIS_DEADLINE_MS.
  REDIS_COMMAND_TIMEOUT_MS: positiveInt.default(1000),
  // How often each process checks the dependencies it needs (its /readyz, the API's prompt 503s).
  ADCLICK_DEPENDENCY_CHECK_MS: positiveInt.default(1000),
  // A consumer partition whose committed offset has not moved for this long while it has lag is
  // stalled: logged, counted, and its consumer rejoins (archiver, speed layer).
  KAFKA_STALL_AFTER_MS: positiveInt.default(120_000),
  // /metrics, /healthz and /readyz of the processes with no HTTP API of their own.
  ARCHIVER_METRICS_PORT: port.default(9465),
  WORKER_METRICS_PORT: port.default(9466),
  // --- end dependency outages ---
  // --- Operations (stack/services/prometheus.ts, serving-layer/ops-metrics.ts, ops/alerts.yml) ---
  // The local stack's Prometheus (scrapes every process of `npm start`, evaluates ops/alerts.yml).
  PROMETHEUS_PORT: port.default(9090),
  // Where the JVMs of the local stack serve Prometheus text through the JMX exporter's Java agent
  // (loaded when Kafka or Pinot starts; ops/jmx/*.yml say which figures).
  KAFKA_JMX_EXPORTER_PORT: port.default(9467),
  PINOT_JMX_EXPORTER_PORT: port.default(9468),
  // An hour not final this many minutes after its end fires HourNotFinal (exported by the API process
  // as adclick_ops_hour_final_deadline_seconds, so the rule follows this setting).
  OPS_HOUR_FINAL_DEADLINE_MINUTES: positiveInt.default(30),
  // --- end operations ---
});

export type Config = z.infer<typeof schema>;

function load(env: NodeJS.ProcessEnv): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n');
    throw new Error(`Invalid configuration in the environment:\n${problems}`);
  }
  return parsed.data;
}

export const config: Config = load(process.env);

/** NODE_ENV=production: dev defaults are refused at start (common/production.ts), /metrics needs the admin key. */
export const production = isProduction(process.env);
if (production) {
  const problems = productionProblems(config, process.env);
  if (problems.length > 0) {
    // Every process imports this module first: one message naming each problem, then no start.
    console.error(productionRefusal(problems));
    process.exit(1);
  }
}

/** host and port of a `host:port` string, e.g. the first Kafka broker. */
export function hostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at), port: Number(address.slice(at + 1)) };
}

export function urlPort(url: string): number {
  const u = new URL(url);
  return Number(u.port || (u.protocol === 'https:' ? 443 : 80));
}

export const kafkaBrokers = (): string[] => config.KAFKA_BROKERS.split(',').map((b) => b.trim());
