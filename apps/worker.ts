// The Temporal worker (`npm run worker`): runs the batch workflows (workflows/) and their activities
// (activities/, over batch-layer/) on the batch task queue, with the speed store for the daily
// reconciliation. The schedules that start the workflows are made by apps/schedules.ts. Everything
// comes from common/config.ts, so a test can run an isolated worker with its own task queue, topic
// and S3 prefix.
import { resolve } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { createKafka } from '../common/kafka.js';
import { createS3, ensureBucket } from '../common/s3.js';
import { createActivities } from '../activities/index.js';
import { configuredBatchPinot } from '../batch-layer/pinot-offline.js';
import { createSpeedStore } from '../speed-layer/speed-store.js';

async function main(): Promise<void> {
  const pool = createPool(5);
  await migrate(pool);
  const s3 = createS3();
  await ensureBucket(s3, config.S3_BUCKET);
  const speedStore = createSpeedStore();
  const kafkaAdmin = createKafka(`adclick-worker-${process.pid}`).admin();
  await kafkaAdmin.connect();
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowsPath: resolve(import.meta.dirname, '..', 'workflows', 'index.ts'),
    activities: createActivities({
      pool,
      s3,
      bucket: config.S3_BUCKET,
      prefix: config.BATCH_S3_PREFIX,
      workDir: config.BATCH_WORK_DIR,
      topic: config.KAFKA_CLICKS_TOPIC,
      kafkaAdmin,
      archiverGroupId: config.ARCHIVER_GROUP_ID,
      silenceBoundMs: config.FINALIZE_SILENCE_BOUND_MS,
      rawRetentionHours: config.BATCH_RAW_RETENTION_DAYS * 24,
      lookbackHours: Math.ceil(config.ADCLICK_IMPRESSION_TTL_S / 3600),
      retention: {
        minuteDays: config.BATCH_MINUTE_RETENTION_DAYS,
        hourDays: config.BATCH_HOUR_RETENTION_DAYS,
        dayYears: config.BATCH_DAY_RETENTION_YEARS,
      },
      speedStore,
      faultPauseMs: config.BATCH_FAULT_PAUSE_MS,
      pinot: configuredBatchPinot(),
    }),
    // Compaction is CPU- and memory-heavy (DuckDB): a few at a time per worker process.
    maxConcurrentActivityTaskExecutions: 4,
  });
  console.log(`[worker] polling task queue ${config.TEMPORAL_TASK_QUEUE}`);
  // The Temporal runtime already shuts the worker down on SIGINT/SIGTERM (its default shutdownSignals).
  await worker.run();
  await connection.close();
  await kafkaAdmin.disconnect();
  await speedStore.close();
  await pool.end();
  s3.destroy();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
