// The authoritative counts as a Pinot OFFLINE table (the alternative to PostgreSQL compared in
// docs/store.md): one segment per finalized hour, named after the hour, so finalizing the hour again
// replaces its segment instead of adding to it. The segment is built by Pinot's own ingestion job
// (`LaunchDataIngestionJob`, standalone runner, one JVM per hour) from a CSV of the hour's
// (ad, advertiser, minute) counts, and pushed as metadata plus a URI: the controller copies the
// segment from the job's output folder into its deep store and the servers load it from there (no
// multipart file upload; Pinot 0.11 refuses a `file:` URI for a plain URI push).
//
// Grain: minute rows only. Hour and day series are sums over them, and the per-advertiser series
// come from a star-tree index on (advertiser_id, minute, hour, day) that pre-aggregates the same rows
// inside each segment, so one row set serves every granularity: no rollup tables to keep in step.
import { execFile } from 'node:child_process';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { config } from '../common/config.js';
import {
  addSchema,
  addTable,
  deleteSchema,
  deleteSegment,
  deleteTable,
  getSchema,
  pinotJavaOpens,
  query,
  renderPinotConfig,
  tableExists,
  type PinotEndpoints,
  type PinotSchema,
  type PinotTableConfig,
} from '../common/pinot.js';
import { HOUR_MS, dayOf } from '../common/time.js';
import { duckConnect, sqlFileList, sqlString } from './parquet.js';

const run = promisify(execFile);
const DIR = resolve(import.meta.dirname, 'pinot');

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
    await addSchema(renderPinotConfig<PinotSchema>(join(DIR, 'batch_counts.schema.json'), vars), endpoints);
  if (!(await tableExists(deps.table, 'OFFLINE', endpoints)))
    await addTable(
      renderPinotConfig<PinotTableConfig>(join(DIR, 'batch_counts.table.json'), vars),
      endpoints,
    );
}

/** Drops the table with its segments, then its schema (tests and tools; missing ones are fine). */
export async function dropBatchPinotTable(deps: PinotOfflineDeps): Promise<void> {
  await deleteTable(deps.table, 'OFFLINE', endpointsOf(deps));
  await deleteSchema(deps.table, endpointsOf(deps));
}

/**
 * What a segment holds, as three sums that the broker can recompute: rows, clicks, and clicks
 * weighted by ad id modulo 1,000 (so a re-finalized hour whose totals did not change but whose
 * clicks moved between ads is still told apart from the segment it replaces; the modulo keeps the
 * sum exact in the broker's doubles).
 */
export interface SegmentFingerprint {
  rows: number;
  clicks: number;
  adWeightedClicks: number;
}

/**
 * Writes the segment's input: one CSV row per (ad, minute) of the hour with its advertiser, minute,
 * hour and day (epoch ms) and clicks, sorted by ad then minute (ad_id is the table's sorted column).
 * The counts are compaction's own ad-minute rows (countHour's CSV: ad_id, minute as UTC text,
 * clicks), so the dedup rule lives in one place; the advertiser of each ad comes from the raw files.
 */
export async function writeSegmentInput(
  adMinuteCsv: string,
  rawFiles: readonly string[],
  hourStart: number,
  path: string,
): Promise<SegmentFingerprint> {
  // No raw files: no clicks, and compaction wrote no CSV.
  if (rawFiles.length === 0) return { rows: 0, clicks: 0, adWeightedClicks: 0 };
  const conn = await duckConnect();
  try {
    const rows = `select m.ad_id, a.advertiser_id, epoch_ms(m.minute) as minute, ${hourStart}::bigint as hour,
                         ${dayOf(hourStart)}::bigint as day, m.clicks
                    from read_csv(${sqlString(adMinuteCsv)}, header = false,
                                  columns = {'ad_id': 'BIGINT', 'minute': 'TIMESTAMP', 'clicks': 'BIGINT'}) m
                    join (select ad_id, arg_min(advertiser_id, ts) as advertiser_id
                            from read_parquet(${sqlFileList(rawFiles)})
                           where ts >= ${hourStart} and ts < ${hourStart + HOUR_MS}
                           group by ad_id) a using (ad_id)`;
    await conn.run(`create or replace temp table segment_input as ${rows}`);
    await conn.run(
      `copy (select * from segment_input order by ad_id, minute) to ${sqlString(path)} (format csv, header true)`,
    );
    const r = await conn.runAndReadAll(
      `select count(*)::double as rows, coalesce(sum(clicks), 0)::double as clicks,
              coalesce(sum(clicks * (ad_id % 1000)), 0)::double as weighted
         from segment_input`,
    );
    const row = r.getRowObjectsJS()[0]!;
    return { rows: Number(row.rows), clicks: Number(row.clicks), adWeightedClicks: Number(row.weighted) };
  } finally {
    await conn.run('drop table if exists temp.segment_input').catch(() => undefined);
    conn.closeSync();
  }
}

/**
 * The ingestion job's spec (JSON is YAML): every CSV under `inputDir` becomes the one segment
 * `segmentName` in `outputDir`, then the controller is sent its metadata and URI and copies it.
 */
function jobSpec(deps: PinotOfflineDeps, inputDir: string, outputDir: string, segmentName: string): object {
  const controller = deps.controllerUrl.replace(/\/$/, '');
  const standalone = 'org.apache.pinot.plugin.ingestion.batch.standalone';
  return {
    executionFrameworkSpec: {
      name: 'standalone',
      segmentGenerationJobRunnerClassName: `${standalone}.SegmentGenerationJobRunner`,
      segmentMetadataPushJobRunnerClassName: `${standalone}.SegmentMetadataPushJobRunner`,
    },
    jobType: 'SegmentCreationAndMetadataPush',
    inputDirURI: `file://${inputDir}`,
    includeFileNamePattern: 'glob:**/*.csv',
    outputDirURI: `file://${outputDir}`,
    overwriteOutput: true,
    pinotFSSpecs: [{ scheme: 'file', className: 'org.apache.pinot.spi.filesystem.LocalPinotFS' }],
    recordReaderSpec: {
      dataFormat: 'csv',
      className: 'org.apache.pinot.plugin.inputformat.csv.CSVRecordReader',
      configClassName: 'org.apache.pinot.plugin.inputformat.csv.CSVRecordReaderConfig',
    },
    tableSpec: {
      tableName: deps.table,
      schemaURI: `${controller}/tables/${deps.table}/schema`,
      tableConfigURI: `${controller}/tables/${deps.table}`,
    },
    segmentNameGeneratorSpec: { type: 'fixed', configs: { 'segment.name': segmentName } },
    pinotClusterSpecs: [{ controllerURI: controller }],
    // The controller is sent the segment's metadata and its URI in outputDir (`file://` + path) and
    // copies the segment from there into its deep store (the servers download it from the deep store).
    pushJobSpec: {
      pushAttempts: 2,
      pushRetryIntervalMillis: 1000,
      segmentUriPrefix: 'file://',
      copyToDeepStoreForMetadataPush: true,
    },
  };
}

/** Runs PinotAdministrator with `command` in a JVM of its own; throws with its last log lines on failure. */
async function runPinotAdmin(deps: PinotOfflineDeps, tmpDir: string, command: string[]): Promise<void> {
  const args = [
    `-Xmx${deps.jobHeap ?? '1g'}`,
    '-XX:+UseSerialGC',
    ...pinotJavaOpens,
    `-Djava.io.tmpdir=${tmpDir}`,
    `-Dlog4j2.configurationFile=${join(DIR, 'log4j2.xml')}`,
    // Without it PinotAdministrator returns from main with status 0 whatever the command did.
    '-Dpinot.admin.system.exit=true',
    '-cp',
    `${deps.libDir}/*`,
    'org.apache.pinot.tools.admin.PinotAdministrator',
    ...command,
  ];
  try {
    await run('java', args, { maxBuffer: 64 * 1024 * 1024 });
  } catch (e) {
    const err = e as Error & { stderr?: string; stdout?: string };
    const log = `${err.stdout ?? ''}\n${err.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
    throw new Error(`Pinot ${command[0]} failed: ${err.message.split('\n')[0]}\n${log}`);
  }
}

/** Runs Pinot's ingestion job on the spec at `specPath` (segment build, then push). */
export async function runIngestionJob(
  deps: PinotOfflineDeps,
  specPath: string,
  tmpDir: string,
): Promise<void> {
  await runPinotAdmin(deps, tmpDir, ['LaunchDataIngestionJob', '-jobSpecFile', specPath]);
}

/**
 * Wall time of the job's JVM doing nothing: start, class path and plugin scan, exit (PinotAdministrator
 * printing its usage). The fixed cost that a JVM per hour adds to every segment.
 */
export async function pinotJvmStartMs(deps: PinotOfflineDeps): Promise<number> {
  const tmp = join(deps.workDir, 'jvm-start');
  await mkdir(tmp, { recursive: true });
  const t = performance.now();
  await runPinotAdmin(deps, tmp, ['-help']);
  return performance.now() - t;
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

/** Waits until the broker answers for the hour with exactly `expected` (the new segment is served). */
async function waitServed(
  deps: PinotOfflineDeps,
  hourStart: number,
  expected: SegmentFingerprint,
): Promise<void> {
  const deadline = Date.now() + (deps.servedTimeoutMs ?? 60_000);
  let served = await servedFingerprint(deps, hourStart);
  while (!sameFingerprint(served, expected)) {
    if (Date.now() > deadline)
      throw new Error(
        `Pinot ${deps.table}: hour ${new Date(hourStart).toISOString()} serves ${JSON.stringify(served)}, ` +
          `pushed ${JSON.stringify(expected)}; is the server loading segments? (npm run stack:logs -- pinot)`,
      );
    await new Promise((r) => setTimeout(r, 100));
    served = await servedFingerprint(deps, hourStart);
  }
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
  const dir = join(deps.workDir, segment);
  const inputDir = join(dir, 'input');
  const outputDir = join(dir, 'output');
  await rm(dir, { recursive: true, force: true });
  await mkdir(inputDir, { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });
  try {
    let t = performance.now();
    const fingerprint = await writeSegmentInput(
      adMinuteCsv,
      rawFiles,
      hourStart,
      join(inputDir, 'counts.csv'),
    );
    const inputMs = performance.now() - t;
    t = performance.now();
    let segmentTarBytes = 0;
    if (fingerprint.rows === 0) {
      await deleteSegment(deps.table, segment, 'OFFLINE', endpointsOf(deps));
    } else {
      const specPath = join(dir, 'job.json');
      await writeFile(specPath, JSON.stringify(jobSpec(deps, inputDir, outputDir, segment), null, 2));
      await runIngestionJob(deps, specPath, join(dir, 'tmp'));
      segmentTarBytes = (await stat(join(outputDir, await onlyTar(outputDir)))).size;
    }
    const jobMs = performance.now() - t;
    t = performance.now();
    await waitServed(deps, hourStart, fingerprint);
    return { segment, fingerprint, inputMs, jobMs, servedMs: performance.now() - t, segmentTarBytes };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One row of the OFFLINE table: an ad's clicks in a minute (epoch ms), with its advertiser. */
export interface MinuteCountRow {
  adId: string;
  advertiserId: string;
  minute: number;
  clicks: number;
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
  const dir = join(deps.workDir, segment);
  const inputDir = join(dir, 'input');
  await rm(dir, { recursive: true, force: true });
  await mkdir(inputDir, { recursive: true });
  await mkdir(join(dir, 'tmp'), { recursive: true });
  try {
    const sorted = [...rows].sort((a, b) => Number(BigInt(a.adId) - BigInt(b.adId)) || a.minute - b.minute);
    const csv = sorted.map((r) => {
      const hour = r.minute - (r.minute % HOUR_MS);
      return `${r.adId},${r.advertiserId},${r.minute},${hour},${dayOf(hour)},${r.clicks}`;
    });
    await writeFile(
      join(inputDir, 'counts.csv'),
      ['ad_id,advertiser_id,minute,hour,day,clicks', ...csv].join('\n') + '\n',
    );
    const specPath = join(dir, 'job.json');
    await writeFile(specPath, JSON.stringify(jobSpec(deps, inputDir, join(dir, 'output'), segment), null, 2));
    await runIngestionJob(deps, specPath, join(dir, 'tmp'));
    // Served once the broker answers these ads' rows in the segment's range with the pushed sums.
    const ads = [...new Set(rows.map((r) => String(BigInt(r.adId))))].join(', ');
    const from = Math.min(...rows.map((r) => r.minute));
    const to = Math.max(...rows.map((r) => r.minute)) + 60_000;
    const want = `${rows.length}/${rows.reduce((n, r) => n + r.clicks, 0)}`;
    const deadline = Date.now() + (deps.servedTimeoutMs ?? 60_000);
    for (;;) {
      const r = await query(
        `select count(*), sum(clicks) from ${deps.table} where ad_id in (${ads}) and minute >= ${from} and minute < ${to}`,
        endpointsOf(deps),
      );
      const served = (r.rows[0] ?? [0, 0]).map((v) => String(Number(v))).join('/');
      if (served === want) return;
      if (Date.now() > deadline)
        throw new Error(
          `Pinot ${deps.table}: segment ${segment} serves ${served} (rows/clicks), pushed ${want}`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The one segment tar the job wrote into `outputDir`. */
async function onlyTar(outputDir: string): Promise<string> {
  const tars = (await readdir(outputDir, { recursive: true })).filter((f) => f.endsWith('.tar.gz'));
  if (tars.length !== 1) throw new Error(`${outputDir}: expected one segment tar, found ${tars.length}`);
  return tars[0]!;
}
