// Entry point of the click service (`npm run ingest`). The primary process applies the migrations,
// creates the Kafka topics, then forks one worker per core (ADCLICK_CLICK_WORKERS) that all serve
// PORT: each worker is a full click service with its own spool file (spool-<n>.log, n stable across
// restarts). Worker 0 also drains spool files left by a larger earlier run. SIGTERM/SIGINT: stop
// accepting, flush the click log (Kafka or spool), close the clients, exit.
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { readdir } from 'node:fs/promises';
import express, { type Router } from 'express';
import { authenticate } from '../common/auth.js';
import type pg from 'pg';
import { AggregatorRegistry } from 'prom-client';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { appTopics, createKafka, ensureTopics } from '../common/kafka.js';
import { metricsText, registry } from '../common/metrics.js';
import { ClickLog } from './click-log.js';
import { clickMetrics } from './metrics.js';
import { startClickService } from './service.js';
import { createServingRouter, dashboardStatic } from '../serving-layer/router.js';
import { createSpeedStore } from '../speed-layer/speed-store.js';

const METRICS_REQ = 'adclick:metrics-req';
const METRICS_RES = 'adclick:metrics-res';
interface MetricsMessage {
  type: string;
  id: number;
  text?: string;
}

const spoolFile = (n: number): string => join(config.ADCLICK_SPOOL_DIR, `spool-${n}.log`);

/**
 * Routers mounted after the catalogue API in every worker: the serving layer's dashboard (no key) and
 * its metrics and operations API (behind the same key check as the catalogue). This entry point is
 * the API process's composition root, the one place where the click path and the serving layer meet.
 */
function extraRouters(pool: pg.Pool): Router[] {
  const serving = express.Router();
  serving.use(dashboardStatic());
  serving.use('/v1', express.json({ limit: '16kb' }), authenticate(pool));
  serving.use(createServingRouter({ pool, speedStore: createSpeedStore() }));
  return [serving];
}

async function primary(): Promise<void> {
  const pool = createPool(1);
  const applied = await migrate(pool);
  await pool.end();
  if (applied.length > 0) console.log(`migrations applied: ${applied.join(', ')}`);
  const admin = createKafka('adclick-ingest-setup').admin();
  try {
    await admin.connect();
    await ensureTopics(admin, appTopics());
  } catch (e) {
    // The click path spools while Kafka is away; topics are created on a later start.
    console.error(
      `Kafka topics not checked (${(e as Error).message}); clicks will spool until Kafka is back`,
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }

  const count = config.ADCLICK_CLICK_WORKERS || availableParallelism();
  const aggregator = new AggregatorRegistry();
  const byIndex = new Map<number, Worker>();
  let stopping = false;
  const fork = (index: number): void => {
    const w = cluster.fork({ ADCLICK_WORKER_INDEX: String(index), ADCLICK_WORKER_COUNT: String(count) });
    byIndex.set(index, w);
    w.on('message', (m: MetricsMessage) => {
      if (m?.type !== METRICS_REQ) return;
      aggregator.clusterMetrics().then(
        (text) => w.send({ type: METRICS_RES, id: m.id, text }),
        (e: Error) => w.send({ type: METRICS_RES, id: m.id, text: `# metrics unavailable: ${e.message}\n` }),
      );
    });
    w.on('exit', (code, signal) => {
      if (stopping) return;
      console.error(`click worker ${index} exited (${signal ?? code}); restarting it`);
      setTimeout(() => fork(index), 500);
    });
  };
  for (let i = 0; i < count; i++) fork(i);
  console.log(`click service: ${count} workers on http://${config.HOST}:${config.PORT}`);

  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    for (const w of byIndex.values()) w.process.kill('SIGTERM');
    const left = setTimeout(() => process.exit(1), 15_000);
    left.unref();
    cluster.on('exit', () => {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
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
  const service = await startClickService({
    spoolPath: spoolFile(index),
    extraRouters,
    metricsText: clusterMetricsText,
  });
  const orphans = index === 0 ? await drainOrphanSpools(count) : [];

  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void Promise.all([service.close(), ...orphans.map((o) => o.close())]).finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', () => undefined); // the primary decides; a terminal's ^C reaches every process
}

/** Spool files of worker indexes this run does not have: replayed by worker 0. */
async function drainOrphanSpools(count: number): Promise<ClickLog[]> {
  const files = await readdir(config.ADCLICK_SPOOL_DIR).catch(() => [] as string[]);
  const logs: ClickLog[] = [];
  for (const f of files) {
    const m = /^spool-(\d+)\.log$/.exec(f);
    if (!m || Number(m[1]) < count) continue;
    logs.push(
      await ClickLog.open({
        kafka: createKafka(`adclick-ingest-orphan-${m[1]}`),
        topic: config.KAFKA_CLICKS_TOPIC,
        spoolPath: join(config.ADCLICK_SPOOL_DIR, f),
        deadlineMs: config.ADCLICK_PRODUCE_DEADLINE_MS,
        lingerMs: config.ADCLICK_PRODUCE_LINGER_MS,
        batchMax: config.ADCLICK_PRODUCE_BATCH_MAX,
        metrics: clickMetrics(),
      }),
    );
  }
  return logs;
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

(cluster.isPrimary ? primary() : worker()).catch((e: Error) => {
  console.error(`click service failed to start: ${e.message}`);
  process.exit(1);
});
