// Applies the speed layer's Pinot schema and REALTIME table (speed-layer/pinot/*.json) through the
// controller (common/pinot.ts), idempotently: an existing schema or table is left as it is. Pinot
// starts consuming partitions added to the topic only when its realtime validation task runs
// (hourly by default): `consumeNewPartitions` runs it now.
import { resolve } from 'node:path';
import { config } from '../common/config.js';
import {
  addSchema,
  addTable,
  deleteSchema,
  deleteTable,
  getSchema,
  kafkaConsumerFactory,
  renderPinotConfig,
  tableExists,
  type PinotSchema,
  type PinotTableConfig,
} from '../common/pinot.js';

const DIR = resolve(import.meta.dirname, 'pinot');

export interface PinotTableOptions {
  table?: string;
  topic?: string;
  brokers?: string;
  retentionDays?: number;
  controllerUrl?: string;
  /** Pinot's Kafka consumer plugin; by default the one the running Pinot ships (kafka20 on 0.x). */
  consumerFactory?: string;
}

/** Creates the schema and the table unless they exist. The Kafka topic must exist first. */
export async function ensurePinotTables(opts: PinotTableOptions = {}): Promise<void> {
  const endpoints = { controllerUrl: opts.controllerUrl ?? config.PINOT_CONTROLLER_URL };
  const table = opts.table ?? config.SPEED_PINOT_TABLE;
  const vars = {
    TABLE: table,
    TOPIC: opts.topic ?? config.KAFKA_MINUTE_COUNTS_TOPIC,
    BROKERS: opts.brokers ?? config.KAFKA_BROKERS,
    RETENTION_DAYS: String(opts.retentionDays ?? config.SPEED_PINOT_RETENTION_DAYS),
    REPLICATION: String(config.PINOT_REPLICATION),
    CONSUMER_FACTORY: opts.consumerFactory ?? (await kafkaConsumerFactory(endpoints)),
    // Pinot hands every stream config to its Kafka consumer as a property (KafkaPartitionLevelConnectionHandler).
    FETCH_MIN_BYTES: String(config.SPEED_PINOT_FETCH_MIN_BYTES),
    FETCH_MAX_WAIT_MS: String(config.SPEED_PINOT_FETCH_MAX_WAIT_MS),
  };
  if (!(await getSchema(table, endpoints))) {
    await addSchema(
      renderPinotConfig<PinotSchema>(resolve(DIR, 'minute_counts.schema.json'), vars),
      endpoints,
    );
  }
  if (!(await tableExists(table, 'REALTIME', endpoints))) {
    await addTable(
      renderPinotConfig<PinotTableConfig>(resolve(DIR, 'minute_counts.table.json'), vars),
      endpoints,
    );
  } else {
    // Partitions added to the topic while the speed layer was down are consumed from now on.
    await consumeNewPartitions(table, endpoints.controllerUrl);
  }
}

/**
 * Makes Pinot consume every partition of the table's topic now, including ones added since it last
 * looked, by running the controller's RealtimeSegmentValidationManager for this table (it creates
 * the consuming segments of new partitions, from their first offset). Pinot 0.11 names the table
 * `tableName` + `type`; newer releases `tablename` with the type suffix: both are sent.
 */
export async function consumeNewPartitions(
  table: string,
  controllerUrl = config.PINOT_CONTROLLER_URL,
): Promise<void> {
  const params = new URLSearchParams({
    taskname: 'RealtimeSegmentValidationManager',
    tableName: table,
    type: 'REALTIME',
    tablename: `${table}_REALTIME`,
  });
  const url = `${controllerUrl.replace(/\/$/, '')}/periodictask/run?${params.toString()}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  if (!res.ok)
    throw new Error(
      `Pinot controller GET /periodictask/run for ${table}: ${res.status} ${text.slice(0, 300)}`,
    );
}

/** Drops the table with its segments, then its schema (tests; missing ones are fine). */
export async function dropPinotTable(
  table: string,
  controllerUrl = config.PINOT_CONTROLLER_URL,
): Promise<void> {
  await deleteTable(table, 'REALTIME', { controllerUrl });
  await deleteSchema(table, { controllerUrl });
}
