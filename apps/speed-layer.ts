// The speed-layer consumer process (`npm run speed-layer`): joins the consumer group on `clicks`,
// counts valid clicks per minute into the store chosen by SPEED_STORE (Pinot through the
// minute_counts topic, or PostgreSQL), serves /metrics, and leaves the group cleanly on SIGTERM.
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
import { SpeedConsumer } from '../speed-layer/consumer.js';
import { KafkaTransactionSink } from '../speed-layer/kafka-sink.js';
import { consumeNewPartitions, ensurePinotTables } from '../speed-layer/pinot-tables.js';
import { PostgresSink } from '../speed-layer/postgres-sink.js';
import type { PartitionSink } from '../speed-layer/sink.js';

const log = (message: string): void => console.log(`[speed-layer ${process.pid}] ${message}`);

async function main(): Promise<void> {
  const kafka = createKafka(`speed-layer-${process.pid}`);
  const clicksTopic = config.KAFKA_CLICKS_TOPIC;
  const countsTopic = config.KAFKA_MINUTE_COUNTS_TOPIC;
  const groupId = config.SPEED_CONSUMER_GROUP;

  const admin = kafka.admin();
  await admin.connect();
  // One topic definition (common/kafka.ts): created, grown and configured on start; minute_counts
  // keeps as many partitions as clicks.
  const changes = await ensureTopics(
    admin,
    config.SPEED_STORE === 'pinot' ? appTopics() : [clicksTopicSpec()],
  );
  for (const line of describeTopicChanges(changes)) log(line);
  const closers: Array<() => Promise<void>> = [];
  let sink: PartitionSink;
  if (config.SPEED_STORE === 'pinot') {
    await ensurePinotTables({ table: config.SPEED_PINOT_TABLE, topic: countsTopic });
    sink = new KafkaTransactionSink(kafka, {
      groupId,
      clicksTopic,
      countsTopic,
      // clicks grew while we run: Pinot is told to consume the new minute_counts partitions now.
      onCountsTopicGrown: () => consumeNewPartitions(config.SPEED_PINOT_TABLE),
      log,
    });
  } else {
    const pool = createPool(4);
    await migrate(pool);
    sink = new PostgresSink(pool, groupId, clicksTopic);
    closers.push(() => pool.end());
  }
  await admin.disconnect();

  const consumer = new SpeedConsumer({
    kafka,
    topic: clicksTopic,
    groupId,
    sink,
    storeName: config.SPEED_STORE,
    openMinutes: config.SPEED_OPEN_WINDOW_MINUTES,
    flushIntervalMs: config.SPEED_FLUSH_INTERVAL_MS,
    fetch: { minBytes: config.KAFKA_CONSUMER_MIN_BYTES, maxWaitTimeInMs: config.KAFKA_CONSUMER_MAX_WAIT_MS },
    log,
  });
  const metrics = serveMetrics(config.SPEED_LAYER_METRICS_PORT, config.HOST);
  await consumer.start();
  log(
    `consuming ${clicksTopic} as ${groupId} into ${config.SPEED_STORE}; /metrics on :${config.SPEED_LAYER_METRICS_PORT}`,
  );

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: committing and leaving the group`);
    void (async () => {
      await consumer.stop();
      await sink.close();
      for (const close of closers) await close();
      metrics.close();
      process.exit(0);
    })().catch((e: Error) => {
      console.error(e);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((e: Error) => {
  console.error(`[speed-layer] failed to start: ${e.stack ?? e.message}`);
  process.exit(1);
});
