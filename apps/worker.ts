// The Temporal worker (`npm run worker`): runs the batch workflows (workflows/) and their activities
// (activities/, over batch-layer/) on the batch task queue, with the speed store for the daily
// reconciliation. The schedules that start the workflows are made by apps/schedules.ts. Everything
// comes from common/config.ts, so a test can run an isolated worker with its own task queue, topic
// and S3 prefix.
import { resolve } from 'node:path';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { createS3, ensureBucket } from '../common/s3.js';
import type { SpeedStore } from '../common/speed-store.js';
import { createActivities } from '../activities/index.js';
import { createSpeedStore } from '../speed-layer/speed-store.js';

export interface BatchWorkerOptions {
  taskQueue: string;
  pool: pg.Pool;
  s3: S3Client;
  prefix: string;
  topic: string;
  speedStore?: SpeedStore;
  lookbackHours?: number;
}

export async function createBatchWorker(
  opts: BatchWorkerOptions,
): Promise<{ worker: Worker; connection: NativeConnection }> {
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: opts.taskQueue,
    workflowsPath: resolve(import.meta.dirname, '..', 'workflows', 'index.ts'),
    activities: createActivities({
      pool: opts.pool,
      s3: opts.s3,
      bucket: config.S3_BUCKET,
      prefix: opts.prefix,
      workDir: config.BATCH_WORK_DIR,
      topic: opts.topic,
      lookbackHours: opts.lookbackHours ?? Math.ceil(config.ADCLICK_IMPRESSION_TTL_S / 3600),
      speedStore: opts.speedStore,
      faultPauseMs: config.BATCH_FAULT_PAUSE_MS,
    }),
    // Compaction is CPU- and memory-heavy (DuckDB): a few at a time per worker process.
    maxConcurrentActivityTaskExecutions: 4,
  });
  return { worker, connection };
}

async function main(): Promise<void> {
  const pool = createPool(5);
  await migrate(pool);
  const s3 = createS3();
  await ensureBucket(s3, config.S3_BUCKET);
  const speedStore = createSpeedStore();
  const { worker, connection } = await createBatchWorker({
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    pool,
    s3,
    prefix: config.BATCH_S3_PREFIX,
    topic: config.KAFKA_CLICKS_TOPIC,
    speedStore,
  });
  console.log(`[worker] polling task queue ${config.TEMPORAL_TASK_QUEUE}`);
  // The Temporal runtime already shuts the worker down on SIGINT/SIGTERM (its default shutdownSignals).
  await worker.run();
  await connection.close();
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
