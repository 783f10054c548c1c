// Batch section of `npm run bench` (alone: `npm run bench:batch -- [--clicks 3600000] [--ads 1000000]
// [--archiver-events 300000]`).
// 1. Writes one synthetic hour of clicks (Zipf-distributed ads, 10% of impressions clicked again) as
//    raw Parquet in bounded chunks, like the archiver does, and uploads it to S3 under a bench prefix.
//    The defaults are a tenth of the target's peak hour: 3.6M clicks over 1M ads give about a tenth of
//    its (ad, minute) and (ad, hour) rows (10M ads, 36M clicks: tools/capacity.ts's model).
// 2. Runs the real hourly compaction on it (S3 download → DuckDB count with first-click dedup →
//    PostgreSQL replace of the hour) and, on the same local files in the same run, DuckDB's plain
//    count(distinct impression) per (ad, minute) as the baseline. Prints where the time went, step by
//    step, and projects each step to the target's peak hour: steps over clicks by the clicks, steps
//    over count rows by the rows the model expects.
// 3. Measures the archiver's sustained rate: events already in Kafka → Parquet in S3, offsets committed.
import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { saltOf, type ClickEvent } from '../common/click-event.js';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { clicksTopicSpec, createKafka, ensureTopics } from '../common/kafka.js';
import { createS3, ensureBucket } from '../common/s3.js';
import { DAY_MS, HOUR_MS } from '../common/time.js';
import { sleep } from '../common/wait.js';
import { Archiver } from '../batch-layer/archiver.js';
import { compactHourFromS3, countHour, type PhaseTime } from '../batch-layer/compaction.js';
import { produceHistory } from '../tools/history-simulator.js';
import { expectedDistinct, rng, zipfBlocks } from '../tools/history.js';
import { rawFileKey } from '../batch-layer/layout.js';
import { duckConnect, sqlFileList, writeRawParquet, type RawClickRow } from '../batch-layer/parquet.js';
import { deleteObjects, listObjects, uploadFile } from '../batch-layer/storage.js';
import { ensurePartitions } from '../batch-layer/partitions.js';
import { tiersOf } from '../common/retention.js';
import { reportFigure, reportTable } from './report.js';

const { values } = parseArgs({
  options: {
    clicks: { type: 'string', default: '3600000' },
    ads: { type: 'string', default: '1000000' },
    'chunk-rows': { type: 'string', default: '200000' },
    'archiver-events': { type: 'string', default: '300000' },
  },
});
const CLICKS = Number(values.clicks);
const ADS = Number(values.ads);
const CHUNK = Number(values['chunk-rows']);
const ARCHIVER_EVENTS = Number(values['archiver-events']);

const run = randomUUID().slice(0, 8);
const prefix = `bench-${run}/`;
const hour = Date.UTC(1980, 0, 1) + Math.floor(Math.random() * 365 * 24) * HOUR_MS;
const dir = join(tmpdir(), `adclick-bench-batch-${run}`);
const secs = (t0: number): number => (performance.now() - t0) / 1000;
const log = (m: string): void => console.error(`[bench:batch] ${m}`);

/** The target's peak hour: 10k clicks/s over 10M ads, Zipf 1 (DESIGN.md), rows from the model. */
const PEAK_CLICKS = 36e6;
const peakRows = ((): { adMinute: number; adHour: number } => {
  const ads = zipfBlocks(10_000_000, 1);
  return {
    adMinute: 60 * expectedDistinct(ads, PEAK_CLICKS / 60),
    adHour: expectedDistinct(ads, PEAK_CLICKS),
  };
})();

/** Advertisers as tools/capacity.ts models them: the 100,000 hottest ads belong to one, then 1,000 ads each. */
const advertiserOfRank = (rank: number): number => (rank < 100_000 ? 1 : 2 + Math.floor(rank / 1000));

/** Ad picker with a Zipf(1) popularity, like real ad traffic: a few hot ads, a long tail. */
function zipfPicker(n: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / (i + 1);
  return () => {
    const x = random() * sum;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! < x) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  };
}

/** Synthetic clicks of one hour in chunks of `CHUNK` rows; each chunk becomes one Parquet file. */
function* chunks(random: () => number): Generator<RawClickRow[]> {
  const pickAd = zipfPicker(ADS, random);
  let rows: RawClickRow[] = [];
  let offset = 0;
  let repeat: ClickEvent | undefined;
  for (let i = 0; i < CLICKS; i++) {
    let event: ClickEvent;
    if (repeat) {
      event = { ...repeat, ts: Math.min(hour + HOUR_MS - 1, repeat.ts + Math.floor(random() * 600_000)) };
      event.status = random() < 0.5 ? 'valid' : 'duplicate';
      repeat = undefined;
    } else {
      const rank = pickAd();
      const eventId = randomUUID();
      event = {
        v: 1,
        eventId,
        adId: String(1_000_000 + rank),
        advertiserId: String(advertiserOfRank(rank)),
        ts: hour + Math.floor(random() * HOUR_MS),
        status: random() < 0.02 ? 'expired' : 'valid',
        salt: saltOf(eventId, 8),
      };
      if (random() < 0.1) repeat = event;
    }
    rows.push({ event, partition: Math.floor(i / CHUNK) % 4, offset: String(offset++) });
    if (rows.length === CHUNK) {
      yield rows;
      rows = [];
    }
  }
  if (rows.length > 0) yield rows;
}

/**
 * Each step's time at the peak hour: a step over count rows (PostgreSQL writes, the CSVs DuckDB writes
 * for them) scales with those rows, every other step with the clicks. Steps beside the writes are
 * shown, not summed: the writes wait for them (`… awaited` steps) when they take longer.
 */
function projectPhases(
  phases: readonly PhaseTime[],
  factor: { clicks: number; adMinute: number; adHour: number },
): Array<PhaseTime & { driver: string; projected: number }> {
  return phases.map((p) => {
    const driver = /minute/.test(p.phase)
      ? 'ad-minute rows'
      : /hour|day/.test(p.phase) && /^(write|count)/.test(p.phase)
        ? 'ad-hour rows'
        : 'clicks';
    const f =
      driver === 'ad-minute rows'
        ? factor.adMinute
        : driver === 'ad-hour rows'
          ? factor.adHour
          : factor.clicks;
    return { ...p, driver, projected: p.seconds * f };
  });
}

async function compactionBench(): Promise<void> {
  const pool = createPool(4);
  await migrate(pool);
  const s3 = createS3();
  await ensureBucket(s3, config.S3_BUCKET);
  await mkdir(join(dir, 'gen'), { recursive: true });
  const files: string[] = [];
  let writeSeconds = 0;
  let n = 0;
  log(`writing ${CLICKS} clicks of ${new Date(hour).toISOString()} in files of ${CHUNK} rows`);
  for (const rows of chunks(rng(42))) {
    const path = join(dir, 'gen', `chunk-${files.length}.parquet`);
    const t0 = performance.now();
    await writeRawParquet(rows, path);
    writeSeconds += secs(t0);
    const first = rows[0]!;
    await uploadFile(
      s3,
      config.S3_BUCKET,
      rawFileKey(prefix, hour, first.partition, first.offset, rows[rows.length - 1]!.offset),
      path,
    );
    files.push(path);
    n += rows.length;
  }
  reportFigure({
    section: 'batch',
    figure: 'raw Parquet write rate (DuckDB appender, ZSTD)',
    value: Math.round(n / writeSeconds),
    unit: 'rows/s',
  });

  // Baseline: DuckDB's straightforward count of distinct impressions per (ad, minute), same files.
  const conn = await duckConnect();
  let t0 = performance.now();
  const base = await conn.runAndReadAll(
    `select count(*) as cells, sum(c) as clicks from (
       select ad_id, ts // 60000 as minute, count(distinct event_id) as c from read_parquet(${sqlFileList(files)})
       where status = 'valid' group by all)`,
  );
  const baselineSeconds = secs(t0);
  conn.closeSync();
  const baseRow = base.getRowObjectsJS()[0]!;
  log(`DuckDB baseline: ${baseRow.clicks} (ad, minute, impression) in ${baselineSeconds.toFixed(1)} s`);

  // Our count alone (first valid click per impression, per ad and minute) on the same local files.
  await mkdir(join(dir, 'count'), { recursive: true });
  t0 = performance.now();
  const counted = await countHour(files, [], hour, join(dir, 'count'));
  const countSeconds = secs(t0);
  log(
    `compaction count: ${counted.validClicks} clicks into ${counted.adMinutes} (ad, minute) rows in ${countSeconds.toFixed(1)} s`,
  );

  // The bench hour's partitions in each tier, as retention makes them for current hours (the minute
  // tier's day split by hour): bench hours are in 1980, which no test uses, so they go afterwards.
  const partitions: string[] = [];
  for (const tier of Object.values(tiersOf({ minuteDays: 1, hourDays: 1, dayYears: 1 })))
    for (const c of await ensurePartitions(pool, { ...tier, retentionDays: 0, ahead: 1 }, hour))
      partitions.push(c.partition);

  // The whole activity: S3 download, 24 h of lookback indexes, count, own index, PostgreSQL replace.
  t0 = performance.now();
  const result = await compactHourFromS3(
    { pool, s3, bucket: config.S3_BUCKET, prefix, workDir: join(dir, 'work'), lookbackHours: 24 },
    hour,
    { workflowId: `bench-${run}`, runId: run },
    (p) => {
      if (p.phase !== 'downloading') log(`  ${secs(t0).toFixed(1)} s: ${p.phase}`);
    },
  );
  const fullSeconds = secs(t0);
  log(
    `full compaction: ${result.validClicks} valid clicks of ${result.events} events in ${fullSeconds.toFixed(1)} s`,
  );

  reportFigure({
    section: 'batch',
    figure: `compaction, full hour (S3 → DuckDB dedup → PostgreSQL), ${CLICKS} clicks`,
    value: Math.round(CLICKS / fullSeconds),
    unit: 'clicks/s',
    target: '≥ 120000',
    baseline: Math.round(CLICKS / baselineSeconds),
    baselineName: 'DuckDB count(distinct) per (ad, minute), same files',
  });
  reportFigure({
    section: 'batch',
    figure: 'compaction, count step only (local files)',
    value: Math.round(CLICKS / countSeconds),
    unit: 'clicks/s',
    baseline: Math.round(CLICKS / baselineSeconds),
    baselineName: 'DuckDB count(distinct) per (ad, minute), same files',
  });
  const projected = projectPhases(result.phases, {
    clicks: PEAK_CLICKS / CLICKS,
    adMinute: peakRows.adMinute / result.adMinutes,
    adHour: peakRows.adHour / result.adHours,
  });
  reportTable({
    section: 'batch',
    name: 'compaction phases (measured hour, and projected to the peak hour)',
    rows: projected.map((p) => ({
      phase: p.besideWrites ? `(beside the writes) ${p.phase}` : p.phase,
      seconds: Number(p.seconds.toFixed(2)),
      'scales with': p.driver,
      'peak hour s': Number(p.projected.toFixed(1)),
    })),
    notes: [
      `measured: ${CLICKS} clicks over ${ADS} ads → ${result.adMinutes} (ad, minute), ${result.adHours} (ad, hour) rows`,
      `peak hour (model, 10M ads, Zipf 1): ${PEAK_CLICKS} clicks → ${Math.round(peakRows.adMinute)} (ad, minute), ${Math.round(peakRows.adHour)} (ad, hour) rows`,
      `DuckDB baseline over the same files: ${baselineSeconds.toFixed(1)} s, ${((PEAK_CLICKS / CLICKS) * baselineSeconds).toFixed(1)} s projected`,
    ],
  });
  reportFigure({
    section: 'batch',
    figure: 'one peak hour (36M clicks, ~13M ad-minute rows), projected step by step',
    value: Math.round(projected.reduce((sum, p) => sum + (p.besideWrites ? 0 : p.projected), 0)),
    unit: 's',
    target: '≤ 60',
    baseline: Math.round((PEAK_CLICKS / CLICKS) * baselineSeconds),
    baselineName: 'DuckDB count(distinct) per (ad, minute), projected by clicks',
  });

  // Leave nothing behind: the bench hour's rows, its finalized mark, its objects.
  for (const partition of partitions) await pool.query(`drop table ${partition}`);
  const from = new Date(hour);
  const to = new Date(hour + HOUR_MS);
  await pool.query('delete from click_counts_minute where minute >= $1 and minute < $2', [from, to]);
  await pool.query('delete from advertiser_counts_minute where minute >= $1 and minute < $2', [from, to]);
  await pool.query('delete from click_counts_hour where hour = $1', [from]);
  await pool.query('delete from advertiser_counts_hour where hour = $1', [from]);
  // Bench hours are in 1980, which no test uses: the day's rows are the bench's.
  await pool.query('delete from click_counts_day where day = $1', [new Date(hour - (hour % DAY_MS))]);
  await pool.query('delete from advertiser_counts_day where day = $1', [new Date(hour - (hour % DAY_MS))]);
  await pool.query('delete from finalized_hours where hour = $1', [from]);
  await pool.query('delete from hour_revisions where hour = $1', [from]);
  await deleteObjects(
    s3,
    config.S3_BUCKET,
    (await listObjects(s3, config.S3_BUCKET, prefix)).map((o) => o.key),
  );
  await pool.end();
  s3.destroy();
  await rm(dir, { recursive: true, force: true });
}

async function archiverBench(): Promise<void> {
  const pool = createPool(2);
  const s3 = createS3();
  const kafka = createKafka('bench-archiver');
  const topic = `bench-archiver-${run}`;
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, [clicksTopicSpec({ topic, partitions: 4 })]);
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  const random = rng(7);
  const events: ClickEvent[] = [];
  for (let i = 0; i < ARCHIVER_EVENTS; i++) {
    const eventId = randomUUID();
    const adId = String(1_000_000 + Math.floor(random() * ADS));
    events.push({
      v: 1,
      eventId,
      adId,
      advertiserId: '1',
      ts: hour + Math.floor(random() * HOUR_MS),
      status: 'valid',
      salt: saltOf(eventId, 8),
    });
  }
  log(`producing ${ARCHIVER_EVENTS} events to ${topic}`);
  await produceHistory(producer, topic, events);
  await producer.disconnect();
  const archiver = new Archiver({
    kafka,
    s3,
    pool,
    bucket: config.S3_BUCKET,
    prefix,
    topic,
    groupId: `bench-archiver-${run}`,
    flushEvents: 50_000,
    flushMs: 5_000,
    graceMs: 60_000,
    workDir: join(dir, 'archiver'),
  });
  const t0 = performance.now();
  await archiver.start();
  while (archiver.stats.events < ARCHIVER_EVENTS) await sleep(100);
  const seconds = secs(t0);
  await archiver.stop();
  reportFigure({
    section: 'batch',
    figure: 'archiver sustained write rate (Kafka → Parquet in S3, one consumer)',
    value: Math.round(ARCHIVER_EVENTS / seconds),
    unit: 'events/s',
    target: '≥ 10000',
  });
  await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
  await admin.disconnect();
  await pool.query('delete from archive_watermarks where topic = $1', [topic]);
  await deleteObjects(
    s3,
    config.S3_BUCKET,
    (await listObjects(s3, config.S3_BUCKET, prefix)).map((o) => o.key),
  );
  await pool.end();
  s3.destroy();
  await rm(dir, { recursive: true, force: true });
}

await compactionBench();
await archiverBench();
process.exit(0);
