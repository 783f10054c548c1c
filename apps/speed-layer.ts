// The speed-layer consumer process (`npm run speed-layer`): joins the consumer group on `clicks`,
// counts valid clicks per minute into the store chosen by SPEED_STORE (Pinot through the
// minute_counts topic, or PostgreSQL), serves /metrics and /readyz (SPEED_LAYER_METRICS_PORT), and
// leaves the group cleanly on SIGTERM. It starts and keeps running while Kafka, PostgreSQL or Pinot
// is away (docs/dependencies.md).
import { config } from '../common/config.js';
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import { createPool, migrateWhenReachable, type Migrations } from '../common/db.js';
import { serveHealth, watchDependency, type DependencyWatch } from '../common/health.js';
import { appTopics, clicksTopicSpec, createKafka, ensureTopicsLogged } from '../common/kafka.js';
import { kafkaProbe, keepTrying } from '../common/startup.js';
import { SpeedConsumer } from '../speed-layer/consumer.js';
import { KafkaTransactionSink } from '../speed-layer/kafka-sink.js';
import {
  consumeNewPartitions,
  CountsMismatchError,
  ensurePinotTables,
  type PinotTableFormat,
} from '../speed-layer/pinot-tables.js';
import { PostgresSink } from '../speed-layer/postgres-sink.js';
import type { PartitionSink } from '../speed-layer/sink.js';

const log = (message: string): void => console.log(`[speed-layer ${process.pid}] ${message}`);

/**
 * Where the counts go: with SPEED_STORE=pinot (no pool) a Kafka transaction to minute_counts, else
 * PostgreSQL; either commits a partition's counts with its offsets at once.
 */
function partitionSink(kafka: Kafka, pool: pg.Pool | undefined): KafkaTransactionSink | PostgresSink {
  const groupId = config.SPEED_CONSUMER_GROUP;
  const clicksTopic = config.KAFKA_CLICKS_TOPIC;
  const countsTopic = config.KAFKA_MINUTE_COUNTS_TOPIC;
  return pool === undefined
    ? new KafkaTransactionSink(kafka, {
        groupId,
        clicksTopic,
        countsTopic,
        // clicks grew while we run: Pinot is told to consume the new minute_counts partitions now.
        onCountsTopicGrown: () => consumeNewPartitions(config.SPEED_PINOT_TABLE),
        log,
      })
    : new PostgresSink(pool, groupId, clicksTopic);
}

/** Several count rows per message only for a table that unnests them (speed-layer/pinot-tables.ts). */
function useTableFormat(sink: KafkaTransactionSink, format: PinotTableFormat): void {
  if (format.manyRowsPerMessage) sink.setRowsPerMessage(config.SPEED_COUNT_ROWS_PER_MESSAGE);
  else
    log(
      `Pinot table ${config.SPEED_PINOT_TABLE} takes one count row per message (made before several were; docs/operations.md, "Several count rows per message")`,
    );
}

/**
 * The Pinot table, made once Pinot answers (retried; counting goes on without it: Pinot only reads
 * the count topic). A table of the other count form (pinot-tables.ts CountsMismatchError) refuses
 * the sink's flushes, so the clicks wait in Kafka, until the configuration or the table is put
 * right; the check goes on, and /readyz says why.
 */
function pinotTable(sink: PartitionSink): {
  probe: () => Promise<void>;
  check: (topic: string, stopped: () => boolean) => void;
} {
  let made = false;
  let mismatch: string | undefined;
  const kafkaSink = sink instanceof KafkaTransactionSink ? sink : undefined;
  const ensure = async (topic: string): Promise<PinotTableFormat> => {
    try {
      return await ensurePinotTables({ table: config.SPEED_PINOT_TABLE, topic, log });
    } catch (e) {
      if (e instanceof CountsMismatchError) {
        mismatch = e.message;
        kafkaSink?.refuse(e.message);
      }
      throw e;
    }
  };
  return {
    probe: () =>
      made ? Promise.resolve() : Promise.reject(new Error(mismatch ?? 'Pinot table not made yet')),
    check: (topic, stopped) =>
      void keepTrying('Pinot table check', () => ensure(topic), { log, stopped, maxDelayMs: 30_000 }).then(
        (format) => {
          made = true;
          mismatch = undefined;
          if (kafkaSink) {
            kafkaSink.refuse(undefined);
            useTableFormat(kafkaSink, format);
          }
        },
        () => undefined,
      ),
  };
}

/** The consumer of clicks, with the windows and fetch settings of the config, into `sink`. */
function speedConsumer(kafka: Kafka, sink: PartitionSink): SpeedConsumer {
  return new SpeedConsumer({
    kafka,
    topic: config.KAFKA_CLICKS_TOPIC,
    groupId: config.SPEED_CONSUMER_GROUP,
    sink,
    storeName: config.SPEED_STORE,
    openMinutes: config.SPEED_OPEN_WINDOW_MINUTES,
    flushIntervalMs: config.SPEED_FLUSH_INTERVAL_MS,
    fetch: { minBytes: config.KAFKA_CONSUMER_MIN_BYTES, maxWaitTimeInMs: config.KAFKA_CONSUMER_MAX_WAIT_MS },
    stallAfterMs: config.KAFKA_STALL_AFTER_MS,
    log,
  });
}

async function main(): Promise<void> {
  const kafka = createKafka(`speed-layer-${process.pid}`);
  const clicksTopic = config.KAFKA_CLICKS_TOPIC;
  const countsTopic = config.KAFKA_MINUTE_COUNTS_TOPIC;
  const groupId = config.SPEED_CONSUMER_GROUP;
  const pinot = config.SPEED_STORE === 'pinot';
  let stopping = false;
  const stopped = (): boolean => stopping;

  // Health first, then the start-up steps, each retried until its dependency answers: the process
  // runs (and /readyz names what is missing) while Kafka, PostgreSQL or Pinot is away.
  const probeKafka = kafkaProbe(createKafka(`speed-layer-probe-${process.pid}`, { probe: true }));
  const watches: DependencyWatch[] = [watchDependency('kafka', probeKafka.probe, { log })];
  const closers: Array<() => Promise<void>> = [];
  let pool: pg.Pool | undefined;
  let schema: Migrations | undefined;
  if (!pinot) {
    const p = createPool(4, { statementTimeoutMs: config.DATABASE_STATEMENT_TIMEOUT_MS });
    pool = p;
    schema = migrateWhenReachable(p, { log });
    watches.push(watchDependency('postgres', () => p.query('select 1'), { log }));
    closers.push(() => p.end());
  }
  const sink = partitionSink(kafka, pool);
  const table = pinot ? pinotTable(sink) : undefined;
  const consumer = speedConsumer(kafka, sink);
  const health = serveHealth(config.SPEED_LAYER_METRICS_PORT, config.HOST, {
    probes: {
      ...Object.fromEntries(watches.map((w) => [w.name, w.probe])),
      ...(schema && { migrations: schema.probe }),
      ...(table && { 'pinot-table': table.probe }),
      consumer: consumer.consumerProbe,
    },
    log,
  });

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: committing and leaving the group`);
    void (async () => {
      schema?.stop();
      for (const w of watches) w.stop();
      await consumer.stop();
      await sink.close().catch(() => undefined);
      await probeKafka.close();
      for (const close of closers) await close();
      health.close();
      process.exit(0);
    })().catch((e: Error) => {
      console.error(e);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  await schema?.done;
  // One topic definition (common/kafka.ts): created, grown and configured on start; minute_counts
  // keeps as many partitions as clicks.
  await keepTrying(
    'Kafka topics check',
    () => ensureTopicsLogged(kafka, pinot ? appTopics() : [clicksTopicSpec()], log),
    { log, stopped },
  );
  table?.check(countsTopic, stopped);
  await keepTrying('joining the consumer group', () => consumer.start(), { log, stopped });
  log(
    `consuming ${clicksTopic} as ${groupId} into ${config.SPEED_STORE}; /metrics and /readyz on :${config.SPEED_LAYER_METRICS_PORT}`,
  );
}

main().catch((e: Error) => {
  console.error(`[speed-layer] failed to start: ${e.stack ?? e.message}`);
  process.exit(1);
});
