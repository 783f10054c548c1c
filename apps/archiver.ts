// The archiver process (`npm run archiver [-- --topic clicks]`): one consumer of the clicks topic that
// writes raw Parquet per event hour to S3 and advances the archive watermarks (batch-layer/archiver.ts).
// Run several for more partitions (each with its own --metrics-port). It starts and keeps running
// while Kafka, S3 or PostgreSQL is away; /readyz (ARCHIVER_METRICS_PORT) names what is missing.
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { config } from '../common/config.js';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { createPool, migrateWhenReachable } from '../common/db.js';
import { serveHealth, watchDependency } from '../common/health.js';
import { appTopics, clicksTopicSpec, createKafka, ensureTopicsLogged } from '../common/kafka.js';
import { createS3, ensureBucket } from '../common/s3.js';
import { kafkaProbe, keepTrying } from '../common/startup.js';
import { Archiver } from '../batch-layer/archiver.js';

const { values } = parseArgs({
  options: {
    topic: { type: 'string', default: config.KAFKA_CLICKS_TOPIC },
    group: { type: 'string', default: config.ARCHIVER_GROUP_ID },
    prefix: { type: 'string', default: config.BATCH_S3_PREFIX },
    'metrics-port': { type: 'string' },
  },
});

const log = (m: string): void => console.error(`[archiver] ${m}`);
// Nothing here waits for a dependency before the health server listens: /readyz names what is
// missing while the start-up steps below retry (docs/dependencies.md).
const pool = createPool(2, { statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS });
const schema = migrateWhenReachable(pool, { log });
const s3 = createS3();
const kafka = createKafka(`archiver-${process.pid}`);
const probeKafka = kafkaProbe(createKafka(`archiver-probe-${process.pid}`, { probe: true }));
const watches = [
  watchDependency('postgres', () => pool.query('select 1'), { log }),
  watchDependency('s3', () => s3.send(new HeadBucketCommand({ Bucket: config.S3_BUCKET })), { log }),
  watchDependency('kafka', probeKafka.probe, { log }),
];

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
  stallAfterMs: config.KAFKA_STALL_AFTER_MS,
  log,
});
const metricsPort = Number(values['metrics-port'] ?? config.ARCHIVER_METRICS_PORT);
const health = serveHealth(metricsPort, config.HOST, {
  probes: {
    ...Object.fromEntries(watches.map((w) => [w.name, w.probe])),
    migrations: schema.probe,
    consumer: archiver.consumerProbe,
  },
  log,
});

let stopping = false;
const stopped = (): boolean => stopping;
await schema.done;
await keepTrying('S3 bucket check', () => ensureBucket(s3, config.S3_BUCKET), { log, stopped });
await keepTrying(
  'Kafka topics check',
  () =>
    ensureTopicsLogged(
      kafka,
      values.topic === config.KAFKA_CLICKS_TOPIC ? appTopics() : [clicksTopicSpec({ topic: values.topic })],
      log,
    ),
  { log, stopped },
);
await keepTrying('joining the consumer group', () => archiver.start(), { log, stopped });
console.log(
  `[archiver] consuming ${values.topic} as ${values.group} → s3://${config.S3_BUCKET}/${values.prefix}raw/clicks/; /metrics and /readyz on :${metricsPort}`,
);

async function shutdown(): Promise<void> {
  if (stopping) return;
  stopping = true;
  schema.stop();
  for (const w of watches) w.stop();
  await archiver.stop();
  await probeKafka.close();
  health.close();
  await pool.end();
  s3.destroy();
  process.exit(0);
}
process.on('SIGINT', () => void shutdown());
process.on('SIGTERM', () => void shutdown());
