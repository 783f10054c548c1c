// Applies the speed layer's Pinot schema and REALTIME table (speed-layer/pinot/*.json) through the
// controller's REST API, idempotently: an existing schema or table is left as it is.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { config } from '../common/config.js';

const DIR = resolve(import.meta.dirname, 'pinot');

export interface PinotTableOptions {
  table?: string;
  topic?: string;
  brokers?: string;
  retentionDays?: number;
  controllerUrl?: string;
  /** Pinot's Kafka consumer plugin: kafka30 on Pinot 1.x, kafka20 on older releases. */
  consumerFactory?: string;
}

function render(file: string, vars: Record<string, string>): unknown {
  const text = readFileSync(resolve(DIR, file), 'utf8').replace(/\$\{(\w+)\}/g, (_, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`${file}: no value for \${${name}}`);
    return value;
  });
  return JSON.parse(text);
}

async function controller(base: string, method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
}

export async function ensurePinotTables(opts: PinotTableOptions = {}): Promise<void> {
  const base = opts.controllerUrl ?? config.PINOT_CONTROLLER_URL;
  const table = opts.table ?? config.SPEED_PINOT_TABLE;
  const vars = {
    TABLE: table,
    TOPIC: opts.topic ?? config.KAFKA_MINUTE_COUNTS_TOPIC,
    BROKERS: opts.brokers ?? config.KAFKA_BROKERS,
    RETENTION_DAYS: String(opts.retentionDays ?? config.SPEED_PINOT_RETENTION_DAYS),
    CONSUMER_FACTORY: opts.consumerFactory ?? (await kafkaConsumerFactory(base)),
  };
  if ((await controller(base, 'GET', `/schemas/${table}`)).status === 404) {
    const res = await controller(base, 'POST', '/schemas', render('minute_counts.schema.json', vars));
    if (!res.ok) throw new Error(`Pinot rejected schema ${table}: ${res.status} ${await res.text()}`);
  }
  const existing = await controller(base, 'GET', `/tables/${table}?type=realtime`);
  const found = existing.ok && Object.keys((await existing.json()) as object).length > 0;
  if (!found) {
    const res = await controller(base, 'POST', '/tables', render('minute_counts.table.json', vars));
    if (!res.ok) throw new Error(`Pinot rejected table ${table}: ${res.status} ${await res.text()}`);
  }
}

export async function dropPinotTable(
  table: string,
  controllerUrl = config.PINOT_CONTROLLER_URL,
): Promise<void> {
  await controller(controllerUrl, 'DELETE', `/tables/${table}?type=realtime`);
  await controller(controllerUrl, 'DELETE', `/schemas/${table}`);
}

/** Pinot 1.x ships the kafka30 consumer (kafka20 is gone); 0.x only kafka20. */
async function kafkaConsumerFactory(base: string): Promise<string> {
  let major = 1;
  try {
    const res = await controller(base, 'GET', '/version');
    const versions = (await res.json()) as Record<string, string>;
    const v = Object.values(versions).find((s) => /^\d+\.\d+/.test(s));
    if (v) major = Number(v.split('.')[0]);
  } catch {
    // unknown: assume a current release
  }
  return major >= 1
    ? 'org.apache.pinot.plugin.stream.kafka30.KafkaConsumerFactory'
    : 'org.apache.pinot.plugin.stream.kafka20.KafkaConsumerFactory';
}
