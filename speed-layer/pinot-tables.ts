// Applies the speed layer's Pinot schema and REALTIME table (speed-layer/pinot/*.json) through the
// controller (common/pinot.ts), idempotently: an existing schema or table is left as it is, but for
// the rows its consuming segments may hold (SPEED_PINOT_CONSUMING_ROWS, Pinot's heap bound) and its
// retention (SPEED_PINOT_RETENTION_DAYS), which follow the configuration at every start. Pinot
// starts consuming partitions added to the topic only when its realtime validation task runs
// (hourly by default): `consumeNewPartitions` runs it now.
//
// Count rows per message: a table made from minute_counts.table.json unnests a message's `rows`
// array into rows (and still takes a message that is one row), and says so in its custom configs
// (COUNT_ROWS_MARKER). Only such a table is sent several rows per message: a consuming segment of a
// table without the unnest would index a message of many rows as one row of nulls, and lose them.
// A table made before keeps one row per message until it is migrated (docs/operations.md, "Several
// count rows per message").
//
// `clicks` and `updatedAt` have no dictionary (`noDictionaryColumns`): they are only summed and
// returned, never filtered on, and `updatedAt` (ms) is a new value for nearly every row, so its
// dictionary grew by a row per row; the two dictionaries were ~3 % of Pinot's ingestion samples at
// 10,000 clicks/s (JFR, README "twentieth round"). Tables made before keep theirs (both work alike).
//
// Count rows are deltas (SPEED_PINOT_COUNTS, the default): a table made for them has no upsert, and
// the readers' sum adds every row. A table of cumulative rows (the form before) keeps the latest row
// per (adId, salt, minute, part) with a FULL upsert, whose primary-key map Pinot 0.11 holds in its
// heap for every key of the retention (~270 bytes each: a 1 GB heap fills in about 10 minutes at
// 10,000 clicks/s). A table is of one form for good: the form is read from its config (`tableFormat`)
// and a table of the other form is refused (`CountsMismatchError`), as deltas read as cumulative
// parts (or the reverse) give wrong counts.
import { resolve } from 'node:path';
import { config } from '../common/config.js';
import {
  addSchema,
  addTable,
  deleteSchema,
  deleteTable,
  getSchema,
  getTableConfig,
  kafkaConsumerFactory,
  renderPinotConfig,
  updateTable,
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
  /** What the rows say (default SPEED_PINOT_COUNTS): the table made, and the one an existing table must be. */
  counts?: CountsForm;
  /**
   * Rows a server holds in the table's consuming segments over its partitions (default
   * SPEED_PINOT_CONSUMING_ROWS): set on a table made, and on an existing table that differs (as
   * `retentionDays` is).
   */
  consumingRows?: number;
  /** Told what was changed on an existing table. */
  log?: (message: string) => void;
}

export type CountsForm = 'deltas' | 'cumulative';

/** An existing table of the other form than the speed layer writes: its counts would be wrong. */
export class CountsMismatchError extends Error {}

/** The custom config that says every consuming segment of the table unnests `rows`. */
export const COUNT_ROWS_MARKER = { key: 'adclick.countRows', value: 'many-per-message' } as const;

/** What the speed layer may send the table. */
export interface PinotTableFormat {
  /** Several count rows per message (`{"rows":[…]}`), else one row per message. */
  manyRowsPerMessage: boolean;
  /** Its rows are summed (no upsert) or kept per key, latest value (a FULL upsert). */
  counts: CountsForm;
}

/** Whether a table config takes several count rows per message: it unnests `rows` and carries the marker. */
export function tableFormat(table: PinotTableConfig | undefined): PinotTableFormat {
  const ingestion = table?.ingestionConfig as
    { complexTypeConfig?: { fieldsToUnnest?: unknown } } | undefined;
  const unnested = ingestion?.complexTypeConfig?.fieldsToUnnest;
  const custom = (table?.metadata as { customConfigs?: Record<string, unknown> } | undefined)?.customConfigs;
  return {
    manyRowsPerMessage:
      Array.isArray(unnested) &&
      unnested.includes('rows') &&
      custom?.[COUNT_ROWS_MARKER.key] === COUNT_ROWS_MARKER.value,
    // No table at all is taken as the form before: the caller sends nothing it could misread.
    counts: table && !upserts(table) ? 'deltas' : 'cumulative',
  };
}

/**
 * Whether Pinot keeps the latest row per key in this table: an `upsertConfig` whose mode is not
 * NONE (Pinot's own reading: no config, a null one or mode NONE is a table that adds every row).
 */
function upserts(table: PinotTableConfig): boolean {
  const upsert = table.upsertConfig as { mode?: unknown } | null | undefined;
  return upsert != null && String(upsert.mode ?? 'FULL').toUpperCase() !== 'NONE';
}

/**
 * Creates the schema and the table unless they exist, and says what the table takes (a table made
 * here takes several rows per message; an older one as its config says). The Kafka topic must exist first.
 */
export async function ensurePinotTables(opts: PinotTableOptions = {}): Promise<PinotTableFormat> {
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
    CONSUMING_ROWS: String(opts.consumingRows ?? config.SPEED_PINOT_CONSUMING_ROWS),
  };
  if (!(await getSchema(table, endpoints))) {
    await addSchema(
      renderPinotConfig<PinotSchema>(resolve(DIR, 'minute_counts.schema.json'), vars),
      endpoints,
    );
  }
  const counts = opts.counts ?? config.SPEED_PINOT_COUNTS;
  const existing = await getTableConfig(table, 'REALTIME', endpoints);
  if (!existing) {
    const made = tableConfigFor(counts, vars);
    await addTable(made, endpoints);
    return tableFormat(made);
  }
  const format = tableFormat(existing);
  if (format.counts !== counts)
    throw new CountsMismatchError(
      `Pinot table ${table} takes ${format.counts} count rows, but the speed layer writes ${counts} ` +
        `(SPEED_PINOT_COUNTS): point SPEED_PINOT_TABLE and KAFKA_MINUTE_COUNTS_TOPIC at a table and ` +
        `topic of that form (docs/operations.md, "Count deltas")`,
    );
  const knobs = withKnobs(existing, {
    consumingRows: vars.CONSUMING_ROWS,
    retentionDays: vars.RETENTION_DAYS,
  });
  if (knobs) {
    await updateTable(knobs.table, endpoints);
    opts.log?.(
      `Pinot table ${table}: ${Object.entries(knobs.changes)
        .map(([key, c]) => `${key} ${c.from} -> ${c.to}`)
        .join(', ')} (from each partition's next segment; the retention at Pinot's next sweep)`,
    );
  }
  // Partitions added to the topic while the speed layer was down are consumed from now on.
  await consumeNewPartitions(table, endpoints.controllerUrl);
  return format;
}

/** Pinot's stream config key for the rows of a server's consuming segments (0: sized by bytes). */
export const FLUSH_ROWS_KEY = 'realtime.segment.flush.threshold.rows';

/** A REALTIME table's stream configs (`tableIndexConfig.streamConfigs`), if it has them there. */
export function streamConfigsOf(table: PinotTableConfig | undefined): Record<string, string> | undefined {
  return (table?.tableIndexConfig as { streamConfigs?: Record<string, string> } | undefined)?.streamConfigs;
}

/**
 * An existing table with the speed layer's knobs that apply to a table already made: the rows of its
 * consuming segments (SPEED_PINOT_CONSUMING_ROWS; a table made before it was sized by Pinot's
 * autotune towards 50 MB a segment, past the heap) and its retention (SPEED_PINOT_RETENTION_DAYS, as
 * the count topic's is set at start). Pinot reads the first when a partition starts its next
 * consuming segment, so the one consuming now keeps the threshold it started with, and the second at
 * its retention manager's next run. Undefined when the table has them already.
 */
export function withKnobs(
  existing: PinotTableConfig,
  wanted: { consumingRows: string; retentionDays: string },
): { table: PinotTableConfig; changes: Record<string, { from: string; to: string }> } | undefined {
  const segments = (existing.segmentsConfig ?? {}) as Record<string, unknown>;
  const changes: Record<string, { from: string; to: string }> = {};
  const streamConfigs = streamConfigsOf(existing);
  let table = existing;
  if (streamConfigs && streamConfigs[FLUSH_ROWS_KEY] !== wanted.consumingRows) {
    changes[FLUSH_ROWS_KEY] = { from: streamConfigs[FLUSH_ROWS_KEY] ?? 'unset', to: wanted.consumingRows };
    table = {
      ...table,
      tableIndexConfig: {
        ...(existing.tableIndexConfig as object),
        streamConfigs: { ...streamConfigs, [FLUSH_ROWS_KEY]: wanted.consumingRows },
      },
    };
  }
  const retention = `${String(segments.retentionTimeValue ?? 'unset')} ${String(segments.retentionTimeUnit ?? '')}`;
  if (retention !== `${wanted.retentionDays} DAYS`) {
    changes.retention = { from: retention.trim(), to: `${wanted.retentionDays} DAYS` };
    table = {
      ...table,
      segmentsConfig: { ...segments, retentionTimeValue: wanted.retentionDays, retentionTimeUnit: 'DAYS' },
    };
  }
  return Object.keys(changes).length > 0 ? { table, changes } : undefined;
}

/**
 * minute_counts.table.json for `counts`: as written (a FULL upsert) for cumulative rows; without the
 * upsert and its routing for deltas, which every row adds to.
 */
export function tableConfigFor(counts: CountsForm, vars: Record<string, string>): PinotTableConfig {
  const made = renderPinotConfig<PinotTableConfig>(resolve(DIR, 'minute_counts.table.json'), vars);
  if (counts === 'cumulative') return made;
  const { upsertConfig: _upsert, routing: _routing, ...deltas } = made;
  return deltas;
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

/** minute_counts.table.json as a config (the cumulative form, as written), its placeholders left empty. */
export function tableTemplate(): PinotTableConfig {
  return tableConfigFor('cumulative', new Proxy({}, { get: () => '' }) as Record<string, string>);
}

/** The part of a table's ingestion config the unnest of `rows` sets. */
interface IngestionConfig {
  complexTypeConfig?: { fieldsToUnnest?: string[] };
  transformConfigs?: Array<{ columnName: string; transformFunction: string }>;
  [field: string]: unknown;
}

/** The steps that bring a table made before to several rows per message (docs/operations.md). */
export type CountRowsStep = 'unnest' | 'mark';

/**
 * `unnest`: adds minute_counts.table.json's ingestion config (the unnest of `rows` and the transforms
 * that name its fields) to an existing table. Its consuming segments take it only when they start
 * again: restart every Pinot server after it. `mark`: then adds COUNT_ROWS_MARKER, from which the
 * speed layer (at its next start) sends several rows per message. Returns the table's format after.
 */
export async function migrateCountRows(
  step: CountRowsStep,
  table: string,
  controllerUrl = config.PINOT_CONTROLLER_URL,
): Promise<PinotTableFormat> {
  const endpoints = { controllerUrl };
  const current = await getTableConfig(table, 'REALTIME', endpoints);
  if (!current) throw new Error(`Pinot has no REALTIME table ${table}`);
  const wanted = tableTemplate().ingestionConfig as IngestionConfig;
  const ingestion = (current.ingestionConfig ?? {}) as IngestionConfig;
  // Compared by what matters, not as text: a controller may add the fields it defaults.
  const unnests =
    (ingestion.complexTypeConfig?.fieldsToUnnest ?? []).includes('rows') &&
    (wanted.transformConfigs ?? []).every((w) =>
      (ingestion.transformConfigs ?? []).some(
        (t) => t.columnName === w.columnName && t.transformFunction === w.transformFunction,
      ),
    );
  if (step === 'unnest') {
    if (!unnests) {
      if (ingestion.transformConfigs !== undefined)
        throw new Error(
          `${table} has transform configs of its own; merge minute_counts.table.json's ingestionConfig by hand`,
        );
      await updateTable({ ...current, ingestionConfig: { ...ingestion, ...wanted } }, endpoints);
    }
  } else {
    if (!unnests)
      throw new Error(
        `${table} does not unnest rows yet: run the unnest step and restart the Pinot servers first`,
      );
    const metadata = (current.metadata ?? {}) as { customConfigs?: Record<string, string> };
    await updateTable(
      {
        ...current,
        metadata: {
          ...metadata,
          customConfigs: { ...metadata.customConfigs, [COUNT_ROWS_MARKER.key]: COUNT_ROWS_MARKER.value },
        },
      },
      endpoints,
    );
  }
  return tableFormat(await getTableConfig(table, 'REALTIME', endpoints));
}
