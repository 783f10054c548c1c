// The Temporal worker (`npm run worker`): runs the batch workflows (workflows/) and their activities
// (activities/, over batch-layer/) on the batch task queue, with the speed store for the daily
// reconciliation. The schedules that start the workflows are made by apps/schedules.ts. Everything
// comes from common/config.ts, so a test can run an isolated worker with its own task queue, topic
// and S3 prefix. It starts and keeps running while any dependency is away (docs/dependencies.md);
// /metrics and /readyz on WORKER_METRICS_PORT.
import { resolve } from 'node:path';
import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { config } from '../common/config.js';
import { createPool, migrateWhenReachable } from '../common/db.js';
import type pg from 'pg';
import { serveHealth, watchDependency, type DependencyWatch, type Probe } from '../common/health.js';
import { createKafka } from '../common/kafka.js';
import { createS3, ensureBucket } from '../common/s3.js';
import { kafkaProbe, keepTrying } from '../common/startup.js';
import { sleep } from '../common/wait.js';
import { createActivities, type BatchActivityDeps } from '../activities/index.js';
import { configuredBatchPinot } from '../batch-layer/pinot-offline.js';
import { createSpeedStore } from './speed-store.js';

const log = (m: string): void => console.error(`[worker] ${m}`);

/** The activities' dependencies: the clients `main` made, the rest from the config. */
function activityDeps(
  clients: Pick<BatchActivityDeps, 'pool' | 's3' | 'kafkaAdmin' | 'speedStore'>,
): BatchActivityDeps {
  return {
    ...clients,
    bucket: config.S3_BUCKET,
    prefix: config.BATCH_S3_PREFIX,
    workDir: config.BATCH_WORK_DIR,
    topic: config.KAFKA_CLICKS_TOPIC,
    archiverGroupId: config.ARCHIVER_GROUP_ID,
    silenceBoundMs: config.FINALIZE_SILENCE_BOUND_MS,
    rawRetentionHours: config.BATCH_RAW_RETENTION_DAYS * 24,
    lookbackHours: Math.ceil(config.ADCLICK_IMPRESSION_TTL_S / 3600),
    retention: {
      minuteDays: config.BATCH_MINUTE_RETENTION_DAYS,
      hourDays: config.BATCH_HOUR_RETENTION_DAYS,
      dayYears: config.BATCH_DAY_RETENTION_YEARS,
    },
    faultPauseMs: config.BATCH_FAULT_PAUSE_MS,
    pinot: configuredBatchPinot(),
  };
}

/** /readyz's dependency checks: PostgreSQL, the bucket, Kafka and Temporal. */
function dependencyWatches(
  pool: pg.Pool,
  s3: S3Client,
  probeKafka: Probe,
  temporalProbe: Connection,
): DependencyWatch[] {
  return [
    watchDependency('postgres', () => pool.query('select 1'), { log }),
    watchDependency('s3', () => s3.send(new HeadBucketCommand({ Bucket: config.S3_BUCKET })), { log }),
    watchDependency('kafka', probeKafka, { log }),
    watchDependency(
      'temporal',
      () =>
        temporalProbe.withDeadline(Date.now() + 1000, () => temporalProbe.workflowService.getSystemInfo({})),
      { log },
    ),
  ];
}

async function main(): Promise<void> {
  let stopping = false;
  const stopped = (): boolean => stopping;
  // The Temporal runtime shuts the worker down on SIGINT/SIGTERM (its default shutdownSignals);
  // this flag tells the loop below that the end of `run` is that, not an outage.
  // Before it polls, nothing is in flight: the process just ends.
  let polling = false;
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      stopping = true;
      if (!polling) process.exit(0);
    });

  // Health first; then each start-up step retried until its dependency answers (/readyz names what
  // is missing meanwhile): the worker starts and keeps running while any dependency is away.
  const pool = createPool(5); // batch statements: DATABASE_BATCH_STATEMENT_TIMEOUT_MS
  const schema = migrateWhenReachable(pool, { log });
  const s3 = createS3();
  const speedStore = createSpeedStore();
  const kafkaAdmin = createKafka(`adclick-worker-${process.pid}`).admin();
  const probeKafka = kafkaProbe(createKafka(`adclick-worker-probe-${process.pid}`, { probe: true }));
  const temporalProbe = Connection.lazy({ address: config.TEMPORAL_ADDRESS });
  const watches = dependencyWatches(pool, s3, probeKafka.probe, temporalProbe);
  const health = serveHealth(config.WORKER_METRICS_PORT, config.HOST, {
    probes: {
      ...Object.fromEntries(watches.map((w) => [w.name, w.probe])),
      migrations: schema.probe,
      worker: () => (polling ? Promise.resolve() : Promise.reject(new Error('not polling its task queue'))),
    },
    log,
  });

  // The schema first (every activity needs it); S3 and Kafka are connected in the background: the
  // worker polls meanwhile, and an activity that needs one before it answers fails and is retried.
  await schema.done;
  void keepTrying('S3 bucket check', () => ensureBucket(s3, config.S3_BUCKET), { log, stopped }).catch(
    () => undefined,
  );
  void keepTrying('Kafka connection', () => kafkaAdmin.connect(), { log, stopped }).catch(() => undefined);
  const activities = createActivities(activityDeps({ pool, s3, kafkaAdmin, speedStore }));
  // A worker that fails (Temporal away for long, its connection lost) is made again, here, with
  // backoff: the activities' state (pools, clients) survives, and workflows resume from history.
  while (!stopping) {
    const connection = await keepTrying(
      'Temporal connection',
      () => NativeConnection.connect({ address: config.TEMPORAL_ADDRESS }),
      { log, stopped },
    ).catch(() => undefined);
    if (!connection) break;
    try {
      const worker = await Worker.create({
        connection,
        namespace: config.TEMPORAL_NAMESPACE,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        workflowsPath: resolve(import.meta.dirname, '..', 'workflows', 'index.ts'),
        activities,
        // Compaction is CPU- and memory-heavy (DuckDB): a few at a time per worker process.
        maxConcurrentActivityTaskExecutions: 4,
      });
      console.log(
        `[worker] polling task queue ${config.TEMPORAL_TASK_QUEUE}; /metrics and /readyz on :${config.WORKER_METRICS_PORT}`,
      );
      polling = true;
      await worker.run();
    } catch (e) {
      if (!stopping) log(`worker stopped (${(e as Error).message}); making it again in 2 s`);
      await sleep(2000);
    } finally {
      polling = false;
      await connection.close().catch(() => undefined);
    }
  }
  schema.stop();
  for (const w of watches) w.stop();
  health.close();
  await kafkaAdmin.disconnect().catch(() => undefined);
  await probeKafka.close();
  await temporalProbe.close().catch(() => undefined);
  await speedStore.close();
  await pool.end();
  s3.destroy();
  process.exit(0);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
