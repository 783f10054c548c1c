// The authoritative counts as a Pinot OFFLINE table (the alternative to PostgreSQL compared in
// docs/store.md): one segment per finalized hour, named after the hour, so finalizing the hour again
// replaces its segment instead of adding to it. The segment is built (pinot-segment.ts) by Pinot's own
// ingestion job (`LaunchDataIngestionJob`, standalone runner, one JVM per hour) from a CSV of the hour's
// (ad, advertiser, minute) counts, and pushed as metadata plus a URI: the controller copies the
// segment from the job's output folder into its deep store and the servers load it from there (no
// multipart file upload; Pinot 0.11 refuses a `file:` URI for a plain URI push).
//
// Grain: minute rows only. Hour and day series are sums over them, and the per-advertiser series
// come from a star-tree index on (advertiser_id, minute, hour, day) that pre-aggregates the same rows
// inside each segment, so one row set serves every granularity: no rollup tables to keep in step.
import { join } from 'node:path';
import { config } from '../common/config.js';
import {
  addSchema,
  addTable,
  deleteSchema,
  deleteSegment,
  deleteTable,
  getSchema,
  query,
  renderPinotConfig,
  tableExists,
  type PinotEndpoints,
  type PinotSchema,
  type PinotTableConfig,
} from '../common/pinot.js';
import { HOUR_MS } from '../common/time.js';
import { sleep } from '../common/wait.js';
import {
  PINOT_CONFIG_DIR,
  buildAndPushSegment,
  segmentTarBytes,
  withSegmentDir,
  writeRowsInput,
  writeSegmentInput,
  type MinuteCountRow,
  type SegmentFingerprint,
} from './pinot-segment.js';

// The segment build lives in pinot-segment.ts; what callers used from here stays importable here.
export {
  pinotJvmStartMs,
  runIngestionJob,
  writeSegmentInput,
  type MinuteCountRow,
  type SegmentFingerprint,
} from './pinot-segment.js';

export interface PinotOfflineDeps {
  /** OFFLINE table (and schema) name. */
  table: string;
  controllerUrl: string;
  brokerUrl: string;
  /** Pinot's jars: the stack resolves them from Maven Central (stack/maven/pinot/pom.xml). */
  libDir: string;
  /** Scratch space for the job's input, spec and output (one folder per hour, removed after). */
  workDir: string;
  /** Heap of the ingestion job's JVM. */
  jobHeap?: string;
  /** How long to wait for the servers to serve a pushed segment. */
  servedTimeoutMs?: number;
  /** Copies of each segment (the table's `replication`; default 1). */
  replication?: number;
  /** Pinot's retention manager deletes segments whose hour is older (default BATCH_PINOT_RETENTION_DAYS). */
  retentionDays?: number;
}

/** The deps for the configured Pinot, with `table` and `workDir` as given. */
export function pinotOfflineDeps(table: string, workDir: string): PinotOfflineDeps {
  return {
    table,
    controllerUrl: config.PINOT_CONTROLLER_URL,
    brokerUrl: config.PINOT_BROKER_URL,
    libDir: join(config.ADCLICK_CACHE_DIR, 'pinot', 'lib'),
    workDir,
    replication: config.PINOT_REPLICATION,
    retentionDays: config.BATCH_PINOT_RETENTION_DAYS,
  };
}

/** With BATCH_STORE=pinot, the deps of BATCH_PINOT_TABLE (finalization publishes there); else undefined. */
export function configuredBatchPinot(workDir = config.BATCH_WORK_DIR): PinotOfflineDeps | undefined {
  return config.BATCH_STORE === 'pinot'
    ? pinotOfflineDeps(config.BATCH_PINOT_TABLE, join(workDir, 'pinot-segments'))
    : undefined;
}

/** The segment of one hour: the same name each time the hour is finalized, e.g. `t_2000-01-01T19`. */
export const hourSegmentName = (table: string, hourStart: number): string =>
  `${table}_${new Date(hourStart).toISOString().slice(0, 13)}`;

const endpointsOf = (deps: PinotOfflineDeps): PinotEndpoints => ({
  controllerUrl: deps.controllerUrl,
  brokerUrl: deps.brokerUrl,
});

/** Creates the schema and the OFFLINE table unless they exist (batch-layer/pinot/*.json). */
export async function ensureBatchPinotTable(deps: PinotOfflineDeps): Promise<void> {
  const endpoints = endpointsOf(deps);
  const vars = {
    TABLE: deps.table,
    REPLICATION: String(deps.replication ?? 1),
    RETENTION_DAYS: String(deps.retentionDays ?? config.BATCH_PINOT_RETENTION_DAYS),
  };
  if (!(await getSchema(deps.table, endpoints)))
    await addSchema(
      renderPinotConfig<PinotSchema>(join(PINOT_CONFIG_DIR, 'batch_counts.schema.json'), vars),
      endpoints,
    );
  if (!(await tableExists(deps.table, 'OFFLINE', endpoints)))
    await addTable(
      renderPinotConfig<PinotTableConfig>(join(PINOT_CONFIG_DIR, 'batch_counts.table.json'), vars),
      endpoints,
    );
}

/** Drops the table with its segments, then its schema (tests and tools; missing ones are fine). */
export async function dropBatchPinotTable(deps: PinotOfflineDeps): Promise<void> {
  await deleteTable(deps.table, 'OFFLINE', endpointsOf(deps));
  await deleteSchema(deps.table, endpointsOf(deps));
}

/** What the broker serves for one hour, as the same sums as `SegmentFingerprint`. */
export async function servedFingerprint(
  deps: PinotOfflineDeps,
  hourStart: number,
): Promise<SegmentFingerprint> {
  const r = await query(
    `select count(*), sum(clicks), sum(clicks * mod(ad_id, 1000)) from ${deps.table}
      where minute >= ${hourStart} and minute < ${hourStart + HOUR_MS}`,
    endpointsOf(deps),
  );
  const [rows, clicks, weighted] = (r.rows[0] ?? [0, 0, 0]).map(Number);
  return { rows: rows ?? 0, clicks: clicks ?? 0, adWeightedClicks: weighted ?? 0 };
}

/** Per-ad and per-advertiser clicks of one hour, as the broker serves them (before a re-finalization). */
export interface HourTotals {
  ads: Map<string, number>;
  advertisers: Map<string, number>;
}

export async function servedHourTotals(deps: PinotOfflineDeps, hourStart: number): Promise<HourTotals> {
  const { rows } = await servedFingerprint(deps, hourStart);
  const totals = async (key: 'ad_id' | 'advertiser_id'): Promise<Map<string, number>> => {
    if (rows === 0) return new Map();
    const r = await query(
      `select ${key}, sum(clicks) from ${deps.table}
        where minute >= ${hourStart} and minute < ${hourStart + HOUR_MS} group by ${key} limit ${rows}`,
      { ...endpointsOf(deps), queryOptions: { numGroupsLimit: Math.max(100_000, rows) }, timeoutMs: 60_000 },
    );
    return new Map(r.rows.map(([id, clicks]) => [String(id), Number(clicks)]));
  };
  return { ads: await totals('ad_id'), advertisers: await totals('advertiser_id') };
}

/** The clicks of one UTC day per ad and per hour, as the broker serves them (daily reconciliation). */
export async function servedDayTotals(
  deps: PinotOfflineDeps,
  dayStart: number,
): Promise<{ ads: Map<string, number>; hours: Map<number, number> }> {
  const where = `hour >= ${dayStart} and hour < ${dayStart + 24 * HOUR_MS}`;
  const opts = { ...endpointsOf(deps), queryOptions: { numGroupsLimit: 10_000_000 }, timeoutMs: 120_000 };
  const ads = await query(
    `select ad_id, sum(clicks) from ${deps.table} where ${where} group by ad_id limit 10000000`,
    opts,
  );
  const hours = await query(
    `select hour, sum(clicks) from ${deps.table} where ${where} group by hour limit 24`,
    opts,
  );
  return {
    ads: new Map(ads.rows.map(([id, clicks]) => [String(id), Number(clicks)])),
    hours: new Map(hours.rows.map(([h, clicks]) => [Number(h), Number(clicks)])),
  };
}

/** One changed key of a re-finalized hour (hour_adjustments), from its totals before and after. */
export interface AdjustmentRow {
  id: string;
  clicksBefore: number;
  clicksAfter: number;
}

/** The keys whose clicks differ between `before` and `after` (a key missing on one side has 0 there). */
export function adjustmentRows(
  before: ReadonlyMap<string, number>,
  after: ReadonlyMap<string, number>,
): AdjustmentRow[] {
  const out: AdjustmentRow[] = [];
  for (const id of new Set([...before.keys(), ...after.keys()])) {
    const clicksBefore = before.get(id) ?? 0;
    const clicksAfter = after.get(id) ?? 0;
    if (clicksBefore !== clicksAfter) out.push({ id, clicksBefore, clicksAfter });
  }
  return out.sort((a, b) => (BigInt(a.id) < BigInt(b.id) ? -1 : BigInt(a.id) > BigInt(b.id) ? 1 : 0));
}

const sameFingerprint = (a: SegmentFingerprint, b: SegmentFingerprint): boolean =>
  a.rows === b.rows && a.clicks === b.clicks && a.adWeightedClicks === b.adWeightedClicks;

/**
 * Polls `read` every 100 ms until `served` says the broker answers with what was pushed; past
 * `servedTimeoutMs` (default 60 s) it throws with `mismatch` of the last answer.
 */
async function untilServed<S>(
  deps: PinotOfflineDeps,
  read: () => Promise<S>,
  served: (answer: S) => boolean,
  mismatch: (answer: S) => string,
): Promise<void> {
  const deadline = Date.now() + (deps.servedTimeoutMs ?? 60_000);
  for (;;) {
    const answer = await read();
    if (served(answer)) return;
    if (Date.now() > deadline) throw new Error(`Pinot ${deps.table}: ${mismatch(answer)}`);
    await sleep(100);
  }
}

/** Waits until the broker answers for the hour with exactly `expected` (the new segment is served). */
function waitServed(deps: PinotOfflineDeps, hourStart: number, expected: SegmentFingerprint): Promise<void> {
  return untilServed(
    deps,
    () => servedFingerprint(deps, hourStart),
    (served) => sameFingerprint(served, expected),
    (served) =>
      `hour ${new Date(hourStart).toISOString()} serves ${JSON.stringify(served)}, ` +
      `pushed ${JSON.stringify(expected)}; is the server loading segments? (npm run stack:logs -- pinot)`,
  );
}

export interface PublishedHour {
  segment: string;
  fingerprint: SegmentFingerprint;
  /** Writing the CSV input (DuckDB). */
  inputMs: number;
  /** The ingestion job's JVM, start to exit: segment build and metadata push. */
  jobMs: number;
  /** From the end of the push until the broker serves the new segment. */
  servedMs: number;
  /** The pushed segment's tar.gz (what the deep store keeps). */
  segmentTarBytes: number;
}

/**
 * Publishes one hour's counts as its segment, replacing the hour's previous segment, and returns once
 * the broker serves them. An hour with no clicks has no segment (an existing one is deleted).
 * `adMinuteCsv` and `rawFiles` are compaction's ad-minute CSV of the hour and its raw Parquet files.
 */
export async function publishHourSegment(
  deps: PinotOfflineDeps,
  hourStart: number,
  adMinuteCsv: string,
  rawFiles: readonly string[],
): Promise<PublishedHour> {
  const segment = hourSegmentName(deps.table, hourStart);
  return withSegmentDir(deps, segment, async (d) => {
    let t = performance.now();
    const fingerprint = await writeSegmentInput(adMinuteCsv, rawFiles, hourStart, d.inputCsv);
    const inputMs = performance.now() - t;
    t = performance.now();
    let tarBytes = 0;
    if (fingerprint.rows === 0) {
      await deleteSegment(deps.table, segment, 'OFFLINE', endpointsOf(deps));
    } else {
      await buildAndPushSegment(deps, d, segment);
      tarBytes = await segmentTarBytes(d.outputDir);
    }
    const jobMs = performance.now() - t;
    t = performance.now();
    await waitServed(deps, hourStart, fingerprint);
    const servedMs = performance.now() - t;
    return { segment, fingerprint, inputMs, jobMs, servedMs, segmentTarBytes: tarBytes };
  });
}

/**
 * Publishes `rows` as the segment `segment` (replacing a segment of that name) and returns once the
 * broker serves them: finals made without compaction, for tests (test/integration/serving-fixtures.ts)
 * and tools. Compaction publishes with publishHourSegment.
 */
export async function publishRows(
  deps: PinotOfflineDeps,
  segment: string,
  rows: readonly MinuteCountRow[],
): Promise<void> {
  if (rows.length === 0) throw new Error(`segment ${segment}: no rows to publish`);
  await withSegmentDir(deps, segment, async (d) => {
    await writeRowsInput(rows, d.inputCsv);
    await buildAndPushSegment(deps, d, segment);
    // Served once the broker answers these ads' rows in the segment's range with the pushed sums.
    const ads = [...new Set(rows.map((r) => String(BigInt(r.adId))))].join(', ');
    const from = Math.min(...rows.map((r) => r.minute));
    const to = Math.max(...rows.map((r) => r.minute)) + 60_000;
    const want = `${rows.length}/${rows.reduce((n, r) => n + r.clicks, 0)}`;
    const read = async (): Promise<string> => {
      const r = await query(
        `select count(*), sum(clicks) from ${deps.table} where ad_id in (${ads}) and minute >= ${from} and minute < ${to}`,
        endpointsOf(deps),
      );
      return (r.rows[0] ?? [0, 0]).map((v) => String(Number(v))).join('/');
    };
    await untilServed(
      deps,
      read,
      (served) => served === want,
      (served) => `segment ${segment} serves ${served} (rows/clicks), pushed ${want}`,
    );
  });
}
