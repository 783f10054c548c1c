// `npm run scale -- --ads 1000000 --peak 100 --hours 24` (docs/capacity.md): realistic volume through
// the real compaction path. For each hour of a diurnal day it writes the hour's raw click Parquet
// (the archiver's schema and S3 layout, under a private prefix; Kafka is not involved) with ads
// drawn from a Zipf law, compacts it with compactHourFromS3 into PostgreSQL, and reports rows per
// table per hour, compaction time, bytes on disk and the serving reads' latencies. Point
// DATABASE_URL at a scratch database: it writes real count rows (far in the past, 2000-01-01).
import { mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type pg from 'pg';
import { config } from '../common/config.js';
import { createPool, migrate } from '../common/db.js';
import { createS3, ensureBucket } from '../common/s3.js';
import { DAY_MS, HOUR_MS } from '../common/time.js';
import { compactHourFromS3 } from '../batch-layer/compaction.js';
import { rawFileKey } from '../batch-layer/layout.js';
import { duckConnect, sqlString } from '../batch-layer/parquet.js';
import { deleteObjects, listObjects, uploadFile } from '../batch-layer/storage.js';
import { BatchStore } from '../serving-layer/batch-store.js';
import type { BatchCountReads } from '../serving-layer/pinot-batch-counts.js';
import { diurnalRate, zipfRankSql } from './history.js';

/** The batch count tables, per ad and per advertiser, minute to day. */
export const COUNT_TABLES = [
  'click_counts_minute',
  'click_counts_hour',
  'click_counts_day',
  'advertiser_counts_minute',
  'advertiser_counts_hour',
  'advertiser_counts_day',
];

/** Advertiser of a Zipf rank: the 100,000 hottest ads belong to advertiser 1, then 1,000 ads each. */
const advertiserSql = (rank: string): string =>
  `case when ${rank} < 100000 then 1 else 2 + ${rank} // 1000 end`;

/** Writes one hour of raw clicks (the archiver's schema) with Zipf-drawn ads to a Parquet file. */
export async function writeHour(
  path: string,
  hourStart: number,
  clicks: number,
  ads: number,
  exponent: number,
): Promise<void> {
  const conn = await duckConnect();
  try {
    await conn.run(
      `copy (
         select 'scale-' || ${hourStart} || '-' || i as event_id, rank as ad_id, ${advertiserSql('rank')} as advertiser_id,
                ${hourStart} + (i * 3600000) // ${clicks} as ts, 'valid' as status, 0 as salt,
                null::varchar as user_agent, null::varchar as ip_hash, null::varchar as referrer,
                0 as kafka_partition, i as kafka_offset
         from (select i, ${zipfRankSql('random()', ads, exponent)} as rank from range(${clicks}) t(i)))
       to ${sqlString(path)} (format parquet, compression zstd)`,
    );
  } finally {
    conn.closeSync();
  }
}

/** A clean day: earlier runs' count rows and finalizations of it go. */
export async function clearDay(pool: pg.Pool, day: number): Promise<void> {
  for (const table of COUNT_TABLES) {
    const col = table.endsWith('minute') ? 'minute' : table.endsWith('hour') ? 'hour' : 'day';
    await pool.query(`delete from ${table} where ${col} >= $1 and ${col} < $2`, [
      new Date(day),
      new Date(day + DAY_MS),
    ]);
  }
  await pool.query('delete from finalized_hours where hour >= $1 and hour < $2', [
    new Date(day),
    new Date(day + DAY_MS),
  ]);
}

/**
 * The serving reads the capacity note reports, over a day of data starting at `day` (the 7- and
 * 90-day ranges end with it), against either authoritative store.
 */
export function servingReads(store: BatchCountReads, day: number): Array<[string, () => Promise<unknown>]> {
  const finalized = new Set(Array.from({ length: 24 }, (_, h) => day + h * HOUR_MS));
  return [
    ['one ad (the hottest), 24 h by minute', () => store.adMinutes('0', day, day + DAY_MS)],
    ['one ad (rank 5000), 24 h by minute', () => store.adMinutes('5000', day, day + DAY_MS)],
    [
      'advertiser with 100,000 ads, 7 days by hour',
      () => store.advertiserHours('1', day - 6 * DAY_MS, day + DAY_MS),
    ],
    [
      'advertiser with 1,000 ads, 7 days by hour',
      () => store.advertiserHours('2', day - 6 * DAY_MS, day + DAY_MS),
    ],
    [
      'advertiser with 100,000 ads, 90 days by day',
      () => store.advertiserDays('1', day - 89 * DAY_MS, day + DAY_MS, finalized),
    ],
    [
      'advertiser with 1,000 ads, 90 days by day',
      () => store.advertiserDays('2', day - 89 * DAY_MS, day + DAY_MS, finalized),
    ],
  ];
}

/** Median time of `runs` calls of `read`, after one warm-up call. */
export async function medianMs(read: () => Promise<unknown>, runs = 5): Promise<number> {
  await read();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push((await timed(read))[1]);
  return times.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

export async function timed<T>(work: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const out = await work();
  return [out, performance.now() - t0];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ads: { type: 'string', default: '1000000' },
      peak: { type: 'string', default: '100' },
      hours: { type: 'string', default: '24' },
      'first-hour': { type: 'string', default: '0' },
      zipf: { type: 'string', default: '1' },
      day: { type: 'string', default: '2000-01-01' },
    },
  });
  const ads = Number(values.ads);
  const peak = Number(values.peak);
  const exponent = Number(values.zipf);
  const day = Date.parse(`${values.day}T00:00:00Z`);
  const hours = Number(values.hours);
  const pool = createPool(3);
  await migrate(pool);
  const s3 = createS3();
  await ensureBucket(s3, config.S3_BUCKET);
  const prefix = `scale-${process.pid}-${Date.now()}/`;
  const dir = join(tmpdir(), `adclick-${prefix}`);
  await mkdir(dir, { recursive: true });
  await clearDay(pool, day);
  console.log(
    `scale: ${ads} ads, Zipf ${exponent}, diurnal peak ${peak}/s, ${hours} h from ${values.day}; prefix ${prefix}`,
  );
  console.log('hour  clicks   ad-minute  ad-hour  adv-minute  adv-hour  write-parquet-ms  compact-ms');
  const rows: Record<string, number> = {};
  let totalClicks = 0;
  try {
    const first = Number(values['first-hour']);
    for (let h = first; h < first + hours; h++) {
      const hourStart = day + h * HOUR_MS;
      const clicks = Math.round(diurnalRate(h % 24, peak) * 3600);
      totalClicks += clicks;
      const file = join(dir, `h${h}.parquet`);
      const [, writeMs] = await timed(() => writeHour(file, hourStart, clicks, ads, exponent));
      await uploadFile(s3, config.S3_BUCKET, rawFileKey(prefix, hourStart, 0, '0', String(clicks - 1)), file);
      const [result, compactMs] = await timed(() =>
        compactHourFromS3(
          { pool, s3, bucket: config.S3_BUCKET, prefix, workDir: dir, lookbackHours: 0 },
          hourStart,
          { workflowId: 'scale', runId: prefix },
        ),
      );
      const counts = await pool.query<{ t: string; n: string }>(
        `select 'am' as t, count(*) as n from click_counts_minute where minute >= $1 and minute < $2
         union all select 'ah', count(*) from click_counts_hour where hour = $1
         union all select 'vm', count(*) from advertiser_counts_minute where minute >= $1 and minute < $2
         union all select 'vh', count(*) from advertiser_counts_hour where hour = $1`,
        [new Date(hourStart), new Date(hourStart + HOUR_MS)],
      );
      const n = Object.fromEntries(counts.rows.map((r) => [r.t, Number(r.n)]));
      for (const [k, v] of Object.entries(n)) rows[k] = (rows[k] ?? 0) + v;
      if (result.validClicks !== clicks)
        throw new Error(`hour ${h}: counted ${result.validClicks} of ${clicks}`);
      console.log(
        [h, clicks, n.am, n.ah, n.vm, n.vh, Math.round(writeMs), Math.round(compactMs)]
          .map(String)
          .join('  '),
      );
      await rm(file, { force: true });
    }
    const days = await pool.query<{ t: string; n: string }>(
      `select 'ad' as t, count(*) as n from click_counts_day where day = $1
       union all select 'vd', count(*) from advertiser_counts_day where day = $1`,
      [new Date(day)],
    );
    console.log(
      `total clicks ${totalClicks}; rows: ${JSON.stringify({ ...rows, ...Object.fromEntries(days.rows.map((r) => [r.t, Number(r.n)])) })}`,
    );
    // Bytes on disk per row: each table's partitions (heap, indexes, TOAST) over its rows.
    for (const table of COUNT_TABLES) {
      const r = await pool.query<{ bytes: string; rows: string }>(
        `select coalesce(sum(pg_total_relation_size(relid)), 0) as bytes,
                (select count(*) from ${table}) as rows
           from pg_partition_tree($1::regclass) where isleaf`,
        [table],
      );
      const { bytes, rows: n } = r.rows[0]!;
      console.log(
        `${table}: ${n} rows, ${bytes} bytes, ${(Number(bytes) / Math.max(1, Number(n))).toFixed(1)} bytes/row`,
      );
    }
    // The serving layer's reads (BatchStore), median of 5 after one warm-up.
    await pool.query(`analyze ${COUNT_TABLES.join(', ')}`);
    const store = new BatchStore(pool);
    for (const [name, read] of servingReads(store, day))
      console.log(`${name}: ${(await medianMs(read)).toFixed(2)} ms`);
  } finally {
    await deleteObjects(
      s3,
      config.S3_BUCKET,
      (await listObjects(s3, config.S3_BUCKET, prefix)).map((o) => o.key),
    );
    await rm(dir, { recursive: true, force: true });
    await pool.end();
    s3.destroy();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
