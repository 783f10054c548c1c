// The build of one Pinot OFFLINE segment, which batch-layer/pinot-offline.ts publishes: its CSV input
// (compaction's ad-minute rows, or given rows), the ingestion job's spec, and Pinot's
// `LaunchDataIngestionJob` in a JVM of its own, which builds the segment and pushes its metadata and
// URI to the controller. Each segment is built in a scratch folder of its own, removed afterwards.
import { execFile } from 'node:child_process';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { pinotJavaOpens } from '../common/pinot.js';
import { HOUR_MS, dayOf } from '../common/time.js';
import { duckConnect, sqlFileList, sqlString } from './parquet.js';
import type { PinotOfflineDeps } from './pinot-offline.js';

const run = promisify(execFile);
/** The table's schema and config templates and the job's log4j2 configuration. */
export const PINOT_CONFIG_DIR = resolve(import.meta.dirname, 'pinot');

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

/** One row of the OFFLINE table: an ad's clicks in a minute (epoch ms), with its advertiser. */
export interface MinuteCountRow {
  adId: string;
  advertiserId: string;
  minute: number;
  clicks: number;
}

/** Writes `rows` as a segment's input CSV, in the same columns and order as `writeSegmentInput`. */
export async function writeRowsInput(rows: readonly MinuteCountRow[], path: string): Promise<void> {
  const sorted = [...rows].sort((a, b) => Number(BigInt(a.adId) - BigInt(b.adId)) || a.minute - b.minute);
  const csv = sorted.map((r) => {
    const hour = r.minute - (r.minute % HOUR_MS);
    return `${r.adId},${r.advertiserId},${r.minute},${hour},${dayOf(hour)},${r.clicks}`;
  });
  await writeFile(path, ['ad_id,advertiser_id,minute,hour,day,clicks', ...csv].join('\n') + '\n');
}

/** A segment's scratch folder: the job's input CSV, its temp and output folders. */
export interface SegmentDir {
  dir: string;
  inputDir: string;
  /** The one CSV the job reads (`inputDir/counts.csv`). */
  inputCsv: string;
  outputDir: string;
  tmpDir: string;
}

/** Runs `use` with a fresh scratch folder for `segment` under `deps.workDir`, removed afterwards. */
export async function withSegmentDir<T>(
  deps: PinotOfflineDeps,
  segment: string,
  use: (d: SegmentDir) => Promise<T>,
): Promise<T> {
  const dir = join(deps.workDir, segment);
  const d: SegmentDir = {
    dir,
    inputDir: join(dir, 'input'),
    inputCsv: join(dir, 'input', 'counts.csv'),
    outputDir: join(dir, 'output'),
    tmpDir: join(dir, 'tmp'),
  };
  await rm(dir, { recursive: true, force: true });
  await mkdir(d.inputDir, { recursive: true });
  await mkdir(d.tmpDir, { recursive: true });
  try {
    return await use(d);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Builds `segment` from the CSV in `d.inputDir` and pushes it (its job spec written beside). */
export async function buildAndPushSegment(
  deps: PinotOfflineDeps,
  d: SegmentDir,
  segment: string,
): Promise<void> {
  const specPath = join(d.dir, 'job.json');
  await writeFile(specPath, JSON.stringify(jobSpec(deps, d.inputDir, d.outputDir, segment), null, 2));
  await runIngestionJob(deps, specPath, d.tmpDir);
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
    `-Dlog4j2.configurationFile=${join(PINOT_CONFIG_DIR, 'log4j2.xml')}`,
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

/** The size of the one segment tar the job wrote into `outputDir` (what the deep store keeps). */
export async function segmentTarBytes(outputDir: string): Promise<number> {
  const tars = (await readdir(outputDir, { recursive: true })).filter((f) => f.endsWith('.tar.gz'));
  if (tars.length !== 1) throw new Error(`${outputDir}: expected one segment tar, found ${tars.length}`);
  return (await stat(join(outputDir, tars[0]!))).size;
}
