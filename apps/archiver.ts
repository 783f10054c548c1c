// The archiver process (`npm run archiver [-- --topic clicks]`): one consumer of the clicks topic that
// writes raw Parquet per event hour to S3 and advances the archive watermarks (batch-layer/archiver.ts).
// Run several for more partitions.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import {
  appTopics,
  clicksTopicSpec,
  createKafka,
  describeTopicChanges,
  ensureTopics,
} from '../common/kafka.js';
import { serveMetrics } from '../common/metrics.js';
import { createS3, ensureBucket } from '../common/s3.js';
import { Archiver } from '../batch-layer/archiver.js';

const { values } = parseArgs({
  options: {
    topic: { type: 'string', default: config.KAFKA_CLICKS_TOPIC },
    group: { type: 'string', default: config.ARCHIVER_GROUP_ID },
    prefix: { type: 'string', default: config.BATCH_S3_PREFIX },
    'metrics-port': { type: 'string' },
  },
});

const pool = createPool(2);
await migrate(pool);
const s3 = createS3();
await ensureBucket(s3, config.S3_BUCKET);
const kafka = createKafka(`archiver-${process.pid}`);
const admin = kafka.admin();
await admin.connect();
const changes = await ensureTopics(
  admin,
  values.topic === config.KAFKA_CLICKS_TOPIC ? appTopics() : [clicksTopicSpec({ topic: values.topic })],
);
for (const line of describeTopicChanges(changes)) console.log(`[archiver] ${line}`);
await admin.disconnect();

const archiver = new Archiver({
  kafka,
  s3,
  pool,
  bucket: config.S3_BUCKET,
  prefix: values.prefix,
  topic: values.topic,
  groupId: values.group,
  flushEvents: config.ARCHIVER_FLUSH_EVENTS,
  flushMs: config.ARCHIVER_FLUSH_MS,
  graceMs: config.ARCHIVER_WATERMARK_GRACE_MS,
  workDir: join(config.BATCH_WORK_DIR, 'archiver'),
  maxBufferedEvents: config.ARCHIVER_MAX_BUFFERED_EVENTS,
  fetch: { minBytes: config.KAFKA_CONSUMER_MIN_BYTES, maxWaitTimeInMs: config.KAFKA_CONSUMER_MAX_WAIT_MS },
  log: (m) => console.error(`[archiver] ${m}`),
});
await archiver.start();
const metrics = values['metrics-port'] ? serveMetrics(Number(values['metrics-port'])) : undefined;
console.log(
  `[archiver] consuming ${values.topic} as ${values.group} → s3://${config.S3_BUCKET}/${values.prefix}raw/clicks/`,
);

let stopping = false;
async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await archiver.stop();
  metrics?.close();
  await pool.end();
  s3.destroy();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown());
process.on('SIGTERM', () => void shutdown());
