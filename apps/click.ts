// The click process (`npm run click`): the public base URL. The primary feeds the host's catalogue
// replica (ADCLICK_CATALOGUE_DIR, ingest/catalogue-feed.ts) and forks one worker per core
// (ADCLICK_CLICK_WORKERS), all serving PORT and reading that replica; PostgreSQL is not needed to
// start or serve (migrations and topic checks run in the background, retried until they succeed).
// Each worker is one click service (ingest/service.ts): `GET /c/:adId` on the lean node:http path,
// /healthz, /readyz and /metrics of the click path, and every other request handed to the API
// process (API_URL) through a reverse proxy, so a local run keeps one base URL while clicks and
// queries run, scale and fail apart. Each worker owns a spool file (spool-<n>.log, n stable across
// restarts); worker 0 also drains spool files left by a larger earlier run. A worker that keeps
// dying is restarted with backoff. SIGTERM/SIGINT: stop accepting, flush the click log, exit.
import cluster, { type Worker } from 'node:cluster';
import { Agent } from 'node:http';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import type { RequestHandler } from 'express';
import { createProxyServer } from 'http-proxy-3';
import { AggregatorRegistry } from 'prom-client';
import { config } from '../common/config.js';
import { createPool, migrateWhenReachable } from '../common/db.js';
import { startCatalogueFeed } from '../ingest/catalogue-feed.js';
import { CatalogueReplica } from '../ingest/catalogue-replica.js';
import { sendApiError } from '../common/http-errors.js';
import { appTopics, createKafka, describeTopicChanges, ensureTopics } from '../common/kafka.js';
import { metricsText, registry } from '../common/metrics.js';
import { RestartBackoff } from '../common/wait.js';
import { ClickLog } from '../ingest/click-log.js';
import { spoolLockDir } from '../ingest/spool.js';
import { OrphanSpools } from '../ingest/spool-orphans.js';
import type { ClickService } from '../ingest/service.js';
import { clickLogOptions } from './click-options.js';
import { startClickService, type ClickServiceOptions } from './click-service.js';

const METRICS_REQ = 'adclick:metrics-req';
const METRICS_RES = 'adclick:metrics-res';
/** A worker tells the primary it holds its spool's lock (so the primary may clear it once it dies). */
const SPOOL_OWNED = 'adclick:spool-owned';
interface MetricsMessage {
  type: string;
  id: number;
  text?: string;
}

/** Where the click process sends what is not a click: API_URL, or the API process on this host. */
export const apiUrl = (): string => config.API_URL ?? `http://127.0.0.1:${config.API_PORT}`;

const spoolFile = (n: number): string => join(config.ADCLICK_SPOOL_DIR, `spool-${n}.log`);

/**
 * A reverse proxy to the API process (http-proxy-3): keep-alive connections, X-Forwarded-* set, and
 * a 502 in the API's error shape while the API process is away (clicks are not affected).
 */
export function apiProxy(target: string): RequestHandler {
  const proxy = createProxyServer({
    target,
    xfwd: true,
    agent: new Agent({ keepAlive: true, maxSockets: 64 }),
  });
  return (req, res) => {
    proxy.web(req, res, {}, () => {
      if (!res.headersSent) sendApiError(res, 502, 'api_unavailable', 'the API is not answering; try again');
      else res.destroy();
    });
  };
}

/** One click service whose non-click requests go to the API process: what each worker runs. */
export function startClickWorker(opts: ClickServiceOptions & { apiUrl?: string }): Promise<ClickService> {
  return startClickService({ fallback: apiProxy(opts.apiUrl ?? apiUrl()), ...opts });
}

/** The host's catalogue replica, fed by this primary; its workers only read it. */
function feedReplica(pool: ReturnType<typeof createPool>): () => Promise<void> {
  const replica = CatalogueReplica.open(config.ADCLICK_CATALOGUE_DIR);
  const feed = startCatalogueFeed({
    replica,
    kafka: createKafka('adclick-catalogue-feed'),
    topic: config.ADCLICK_AD_CHANGES_TOPIC,
    pool,
  });
  return async () => {
    await feed.stop();
    await replica.close();
  };
}

async function checkTopics(): Promise<void> {
  const admin = createKafka('adclick-ingest-setup').admin();
  try {
    await admin.connect();
    for (const line of describeTopicChanges(await ensureTopics(admin, appTopics()))) console.log(line);
  } catch (e) {
    // The click path spools while Kafka is away; topics are created on a later start.
    console.error(
      `Kafka topics not checked (${(e as Error).message}); clicks will spool until Kafka is back`,
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

async function primary(): Promise<void> {
  // Clicks never wait for PostgreSQL: the migrations are retried in the background while it is away.
  const pool = createPool(2, { statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS });
  const stopFeed = feedReplica(pool);
  const schema = migrateWhenReachable(pool, { log: (m) => console.error(`[click] ${m}`) });
  void checkTopics();

  const count = config.ADCLICK_CLICK_WORKERS || availableParallelism();
  const aggregator = new AggregatorRegistry();
  let stopping = false;
  const backoffs = new Map<number, RestartBackoff>();
  const fork = (index: number): void => {
    const startedAt = Date.now();
    const w: Worker = cluster.fork({
      ADCLICK_WORKER_INDEX: String(index),
      ADCLICK_WORKER_COUNT: String(count),
    });
    let ownsSpool = false;
    w.on('message', (m: MetricsMessage) => {
      if (m?.type === SPOOL_OWNED) ownsSpool = true;
      if (m?.type !== METRICS_REQ) return;
      aggregator.clusterMetrics().then(
        (text) => w.send({ type: METRICS_RES, id: m.id, text }),
        (e: Error) => w.send({ type: METRICS_RES, id: m.id, text: `# metrics unavailable: ${e.message}\n` }),
      );
    });
    w.on('exit', (code, signal) => {
      // The worker is gone: its spool lock would otherwise hold its replacement back until it goes
      // stale (~10 s of refused clicks). Only a lock this worker held is cleared, never another
      // process's.
      if (ownsSpool) rmSync(spoolLockDir(spoolFile(index)), { recursive: true, force: true });
      if (stopping) return;
      // A worker that keeps dying (a taken port, a bad config) waits longer each time.
      if (!backoffs.has(index)) backoffs.set(index, new RestartBackoff({ baseMs: 500 }));
      const delay = backoffs.get(index)!.next(Date.now() - startedAt);
      console.error(`click worker ${index} exited (${signal ?? code}); restarting it in ${delay} ms`);
      setTimeout(() => stopping || fork(index), delay);
    });
  };
  for (let i = 0; i < count; i++) fork(i);
  console.log(`click process: ${count} workers on http://${config.HOST}:${config.PORT}, API at ${apiUrl()}`);

  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    schema.stop();
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    const left = setTimeout(() => process.exit(1), 15_000);
    left.unref();
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) void stopFeed().finally(() => process.exit(0));
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function worker(): Promise<void> {
  const index = Number(process.env.ADCLICK_WORKER_INDEX ?? 0);
  const count = Number(process.env.ADCLICK_WORKER_COUNT ?? 1);
  AggregatorRegistry.setRegistries([registry]);
  new AggregatorRegistry(); // installs the worker's answer to the primary's metrics requests
  const replica = CatalogueReplica.open(config.ADCLICK_CATALOGUE_DIR); // fed by the primary
  const service = await startClickWorker({
    spoolPath: spoolFile(index),
    metricsText: clusterMetricsText,
    replica,
  });
  process.send?.({ type: SPOOL_OWNED, id: 0 });
  const orphans = index === 0 ? adoptOrphanSpools(count) : undefined;

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void Promise.all([service.close(), orphans?.close()]).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', () => undefined); // the primary decides; a terminal's ^C reaches every process
}

/**
 * Spool files of worker indexes this run does not have: adopted and replayed by worker 0, which
 * keeps trying while another process holds one (ingest/spool-orphans.ts).
 */
export function adoptOrphanSpools(count: number): OrphanSpools {
  return new OrphanSpools({
    dir: config.ADCLICK_SPOOL_DIR,
    count,
    open: (spoolPath, n) =>
      ClickLog.open(
        clickLogOptions(createKafka(`adclick-ingest-orphan-${n}`), spoolPath, { spoolLockWaitMs: 0 }),
      ),
  }).start();
}

let nextMetricsRequest = 0;
/** Asks the primary for the metrics of all workers; falls back to this worker's own. */
function clusterMetricsText(): Promise<string> {
  if (!process.send) return metricsText();
  const id = nextMetricsRequest++;
  return new Promise<string>((resolve) => {
    const timer = setTimeout(() => {
      process.off('message', onMessage);
      void metricsText().then(resolve);
    }, 3000);
    const onMessage = (m: MetricsMessage): void => {
      if (m?.type !== METRICS_RES || m.id !== id) return;
      clearTimeout(timer);
      process.off('message', onMessage);
      resolve(m.text ?? '');
    };
    process.on('message', onMessage);
    process.send!({ type: METRICS_REQ, id });
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  (cluster.isPrimary ? primary() : worker()).catch((e: Error) => {
    console.error(`click process failed to start: ${e.message}`);
    process.exit(1);
  });
}
