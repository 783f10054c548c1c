// Hourly compaction: raw click Parquet of one hour (plus the seen-ids indexes of the hours before it,
// within the impression lifetime) → authoritative counts per (ad, minute), written to PostgreSQL in
// one transaction that replaces the hour. Deterministic: the same raw files give the same rows.
//
// Dedup rule (DESIGN rule 1): an impression counts once, in the minute of its first valid click.
// "Valid" here is signed and unexpired, whatever Redis said: a click logged `duplicate` counts when no
// earlier click of its impression reached the log (its first click's append failed, or Redis kept a
// key it should not have). Inside the hour: group those events by impression id and keep min(ts). Across hours: an impression
// with a valid click in any of the `lookbackHours` before this one is not counted here. Each hour's
// "seen" index (its distinct valid impression ids) depends only on that hour's raw files, so hours
// can be compacted in any order or in parallel and still agree; the index is named after the raw
// files it covers, so a late file makes it stale and it is rebuilt.
import { mkdir, rm } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import type { S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { DAY_MS, HOUR_MS, dayOf } from '../common/time.js';
import { hourIso } from '../common/time.js';
import { rawHourPrefix, seenIndexHourPrefix, seenIndexKey } from './layout.js';
import { duckConnect, sqlFileList, sqlString } from './parquet.js';
import { deleteObjects, downloadObject, listObjects, uploadFile, type S3Object } from './storage.js';
import { inTransaction } from '../common/db.js';
import { expiredTables, hourPartitionOf } from './partitions.js';
import {
  countedStatuses,
  lookbackHoursOf,
  lookbackSource,
  nextRevision,
  refusal,
  type Finalization,
  type RawCutoff,
} from './decisions.js';
import { rawCutoffOf, recordedRawKeys } from './late-files.js';

export interface CompactionDeps {
  pool: pg.Pool;
  s3: S3Client;
  bucket: string;
  /** Key prefix inside the bucket ('' in production). */
  prefix: string;
  workDir: string;
  /** Hours before this one whose impressions may still be clicked (impression lifetime). */
  lookbackHours: number;
  /** Failure drills: pause after downloading (config BATCH_FAULT_PAUSE_MS). */
  faultPauseMs?: number;
}

/** Who finalized the hour: recorded in finalized_hours. */
export interface CompactionRun {
  workflowId: string;
  runId: string;
}

export interface CompactionProgress {
  phase: 'listing' | 'downloading' | 'indexing' | 'counting' | 'publishing-index' | 'writing' | 'done';
  filesDone: number;
  filesTotal: number;
}

export interface CompactHourResult {
  hour: string;
  /** The hour's finalization revision after this run (a run that changes no number keeps it). */
  revision: number;
  /** This run made a new revision. */
  changed: boolean;
  files: number;
  /** Distinct Kafka messages of the hour, all statuses. */
  events: number;
  validClicks: number;
  adMinutes: number;
  adHours: number;
  /** Impressions with a valid click in this hour that were already seen in an earlier hour. */
  seenEarlier: number;
  /** Where the time went, step by step. */
  phases: PhaseTime[];
}

type Progress = (p: CompactionProgress) => void;

/** Wall time of one step of a compaction (the bench prints where an hour's time goes). */
export interface PhaseTime {
  phase: string;
  seconds: number;
  /** Ran beside the PostgreSQL writes: its time is inside theirs, not added to them. */
  besideWrites?: boolean;
}

/** Times the steps of one compaction: each `lap` closes the step that ran since the previous one. */
export class PhaseClock {
  readonly phases: PhaseTime[] = [];
  private last = performance.now();

  lap(phase: string): void {
    const now = performance.now();
    this.phases.push({ phase, seconds: (now - this.last) / 1000 });
    this.last = now;
  }
}

/** Scratch folder of one hour under one bucket/prefix; stable, so a retried activity reuses downloads. */
function hourDir(deps: CompactionDeps, hourStart: number): string {
  const ns = createHash('sha1').update(`${deps.bucket}/${deps.prefix}`).digest('hex').slice(0, 12);
  return join(deps.workDir, ns, hourIso(hourStart).replaceAll(':', ''));
}

/** Files fetched at once: a single stream leaves the S3 server and the disk mostly idle. */
const DOWNLOAD_CONCURRENCY = 4;

async function downloadAll(
  deps: CompactionDeps,
  objects: readonly S3Object[],
  dir: string,
  onFile?: () => void,
): Promise<string[]> {
  const paths = objects.map((o) => join(dir, basename(o.key)));
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < objects.length; i = next++) {
      await downloadObject(deps.s3, deps.bucket, objects[i]!, paths[i]!);
      onFile?.();
    }
  };
  await Promise.all(Array.from({ length: Math.min(DOWNLOAD_CONCURRENCY, objects.length) }, worker));
  return paths;
}

/**
 * Seen indexes are random ids: zstd halves them (snappy and lz4 barely shrink them), and its fastest
 * level writes them in two thirds of the default level's time, slightly smaller.
 */
const SEEN_INDEX_FORMAT = '(format parquet, compression zstd, compression_level 1)';

/** Signed, unexpired clicks of the hour: the candidates for an impression's first click. */
const validInHour = (files: readonly string[], hourStart: number): string =>
  `select event_id, ts, ad_id, advertiser_id from read_parquet(${sqlFileList(files)})
   where status in (${countedStatuses.map(sqlString).join(', ')}) and ts >= ${hourStart} and ts < ${hourStart + HOUR_MS}`;

/** Writes the distinct valid impression ids of an hour's raw files to a Parquet index. */
async function writeSeenIndex(files: readonly string[], hourStart: number, path: string): Promise<void> {
  const conn = await duckConnect();
  try {
    await conn.run(
      `copy (select distinct event_id from (${validInHour(files, hourStart)}))
       to ${sqlString(path)} ${SEEN_INDEX_FORMAT}`,
    );
  } finally {
    conn.closeSync();
  }
}

/**
 * The local path of the seen index of an earlier hour (decisions.ts, `lookbackSource`): inside the
 * raw retention, up to date with its raw files (built and uploaded when missing or stale); past the
 * raw cutoff, the index retention kept; undefined when the hour has neither.
 */
async function seenIndexOf(
  deps: CompactionDeps,
  hourStart: number,
  dir: string,
  cutoff: RawCutoff,
): Promise<string | undefined> {
  const raw = await listObjects(deps.s3, deps.bucket, rawHourPrefix(deps.prefix, hourStart));
  const existing = await listObjects(deps.s3, deps.bucket, seenIndexHourPrefix(deps.prefix, hourStart));
  const source = lookbackSource({
    hourStart,
    cutoff,
    rawFiles: raw.length,
    retainedIndex: existing.length > 0,
  });
  if (source === 'none') return undefined;
  if (source === 'retained-index') {
    const kept = existing.reduce((a, b) => ((b.lastModified ?? 0) > (a.lastModified ?? 0) ? b : a));
    const path = join(dir, 'lookback', `${hourIso(hourStart).replaceAll(':', '')}-${basename(kept.key)}`);
    await downloadObject(deps.s3, deps.bucket, kept, path);
    return path;
  }
  const key = seenIndexKey(
    deps.prefix,
    hourStart,
    raw.map((o) => o.key),
  );
  const path = join(dir, 'lookback', `${hourIso(hourStart).replaceAll(':', '')}-${basename(key)}`);
  const current = existing.find((o) => o.key === key);
  if (current) {
    await downloadObject(deps.s3, deps.bucket, current, path);
    return path;
  }
  const rawDir = join(dir, 'lookback-raw', hourIso(hourStart).replaceAll(':', ''));
  const files = await downloadAll(deps, raw, rawDir);
  await mkdir(join(dir, 'lookback'), { recursive: true });
  await writeSeenIndex(files, hourStart, path);
  await replaceSeenIndex(deps, key, path, existing);
  await rm(rawDir, { recursive: true, force: true });
  return path;
}

/** The hour's rows, one CSV per table, ready for PostgreSQL COPY. */
interface CountFiles {
  adMinute: string;
  adHour: string;
  advertiserMinute: string;
  advertiserHour: string;
}

interface HourCounts {
  csv: CountFiles;
  /** Distinct Kafka messages of the hour, all statuses. */
  events: number;
  validClicks: number;
  adMinutes: number;
  adHours: number;
  seenEarlier: number;
}

/** The hour's rows, and the work left once they are out: its seen index and its Kafka message count. */
interface HourRollups {
  counts: Omit<HourCounts, 'events'>;
  /**
   * Writes the hour's own seen index (when asked) and counts the hour's distinct Kafka messages, then
   * releases the DuckDB tables: it can run while PostgreSQL takes the rows.
   */
  rest: Promise<number>;
  /** The steps of `rest`, timed apart (they overlap the writes). */
  restClock: PhaseClock;
}

/**
 * Counts one hour with DuckDB: first valid click per impression, minus impressions seen earlier,
 * per (ad, advertiser, minute) into a CSV for PostgreSQL COPY. Exposed for the benchmark.
 */
export async function countHour(
  files: readonly string[],
  earlierIndexes: readonly string[],
  hourStart: number,
  outDir: string,
  seenIndexPath?: string,
  clock = new PhaseClock(),
): Promise<HourCounts> {
  const { counts, rest } = await countRollups(files, earlierIndexes, hourStart, outDir, seenIndexPath, clock);
  const events = await rest;
  clock.lap('count: seen index and events');
  return { ...counts, events };
}

async function countRollups(
  files: readonly string[],
  earlierIndexes: readonly string[],
  hourStart: number,
  outDir: string,
  seenIndexPath: string | undefined,
  clock: PhaseClock,
): Promise<HourRollups> {
  const csv: CountFiles = {
    adMinute: join(outDir, 'ad-minute.csv'),
    adHour: join(outDir, 'ad-hour.csv'),
    advertiserMinute: join(outDir, 'advertiser-minute.csv'),
    advertiserHour: join(outDir, 'advertiser-hour.csv'),
  };
  if (files.length === 0)
    return {
      counts: { csv, validClicks: 0, adMinutes: 0, adHours: 0, seenEarlier: 0 },
      rest: Promise.resolve(0),
      restClock: new PhaseClock(),
    };
  const conn = await duckConnect();
  const t = `first_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e9)}`;
  const release = async (): Promise<void> => {
    for (const table of [`${t}_cells`, `${t}_counted`, t])
      await conn.run(`drop table if exists temp.${table}`).catch(() => undefined);
    conn.closeSync();
  };
  let counts: HourRollups['counts'];
  try {
    await conn.run(
      `create temp table ${t} as
       select event_id, min(ts) as ts, arg_min(ad_id, ts) as ad_id, arg_min(advertiser_id, ts) as advertiser_id
       from (${validInHour(files, hourStart)}) group by event_id`,
    );
    clock.lap('dedup: first valid click per impression');
    // The clicks counted here: the impressions seen in an earlier hour go. The table of all of them
    // stays for this hour's own seen index (for the hours after it), which must not depend on the
    // order hours are compacted in.
    let counted = t;
    let seenEarlier = 0;
    if (earlierIndexes.length > 0) {
      counted = `${t}_counted`;
      await conn.run(
        `create temp table ${counted} as select * from ${t}
          where not exists (select 1 from read_parquet(${sqlFileList(earlierIndexes)}) e
                             where e.event_id = ${t}.event_id)`,
      );
      const n = await conn.runAndReadAll(
        `select (select count(*) from ${t}) - (select count(*) from ${counted}) as n`,
      );
      seenEarlier = Number(n.getRowObjectsJS()[0]!.n);
      clock.lap('dedup: impressions seen earlier removed');
    }
    // Timestamps leave as zone-less UTC text ('1980-01-01 00:48:00', DuckDB's own rendering, far
    // cheaper than strftime); the PostgreSQL transaction sets its time zone to UTC before COPY.
    const ts = (ms: string): string => `make_timestamp((${ms}) * 1000)`;
    const copyCsv = async (select: string, path: string): Promise<number> => {
      const r = await conn.runAndReadAll(`copy (${select}) to ${sqlString(path)} (format csv, header false)`);
      clock.lap(`count: ${basename(path, '.csv')} rows`);
      return r.rowsChanged;
    };
    // The (ad, minute) cells, kept: the ad-hour rows are their sums (a third of the rows to group).
    await conn.run(
      `create temp table ${t}_cells as select ad_id, ts // 60000 as minute, count(*) as clicks from ${counted}
       group by ad_id, minute`,
    );
    clock.lap('count: ad-minute cells');
    // Sorted by primary key: PostgreSQL's index builds and inserts stay local.
    const adMinutes = await copyCsv(
      `select ad_id, ${ts('minute * 60000')}, clicks from ${t}_cells order by ad_id, minute`,
      csv.adMinute,
    );
    const adHours = await copyCsv(
      `select ad_id, ${ts(String(hourStart))}, sum(clicks) from ${t}_cells group by ad_id order by ad_id`,
      csv.adHour,
    );
    await copyCsv(
      `select advertiser_id, ${ts('(ts // 60000) * 60000')} as minute, count(*) from ${counted}
       group by advertiser_id, minute order by advertiser_id, minute`,
      csv.advertiserMinute,
    );
    await copyCsv(
      `select advertiser_id, ${ts(String(hourStart))}, count(*) from ${counted} group by advertiser_id order by advertiser_id`,
      csv.advertiserHour,
    );
    const valid = await conn.runAndReadAll(`select count(*) as n from ${counted}`);
    counts = {
      csv,
      validClicks: Number(valid.getRowObjectsJS()[0]!.n),
      adMinutes,
      adHours,
      seenEarlier,
    };
  } catch (e) {
    await release();
    throw e;
  }
  const restClock = new PhaseClock();
  const rest = (async (): Promise<number> => {
    try {
      if (seenIndexPath) {
        await conn.run(
          `copy (select event_id from ${t}) to ${sqlString(seenIndexPath)} ${SEEN_INDEX_FORMAT}`,
        );
        restClock.lap('own seen index written');
      }
      const events = await conn.runAndReadAll(
        `select count(*) as n from (select distinct kafka_partition, kafka_offset from read_parquet(${sqlFileList(files)}))`,
      );
      restClock.lap('events (distinct Kafka messages)');
      return Number(events.getRowObjectsJS()[0]!.n);
    } finally {
      await release();
    }
  })();
  return { counts, rest, restClock };
}

/** The count tables of one key (per ad, per advertiser): minute, hour and day tiers. */
const COUNT_TABLES = [
  { key: 'ad_id', minute: 'click_counts_minute', hour: 'click_counts_hour', day: 'click_counts_day' },
  {
    key: 'advertiser_id',
    minute: 'advertiser_counts_minute',
    hour: 'advertiser_counts_hour',
    day: 'advertiser_counts_day',
  },
] as const;

/**
 * Replaces the hour's rows (minutes, hour rollups, day rollups; per ad and per advertiser) and marks
 * it finalized, atomically. A tier whose partition of the hour retention has dropped is left alone
 * (batch-layer/partitions.ts): the hour updates the tiers that still hold it.
 * - Minute rows: when the hour has its own partition, a new table is loaded, indexed and swapped in
 *   for it at the end (building an index from sorted rows is several times cheaper than inserting
 *   the rows into the indexes of a day); otherwise the hour's rows are deleted and copied in.
 * - Day rows exist for whole days only (every hour finalized), the only days the API reads them for:
 *   the run that makes a day whole writes them from the day's hour rows; in a whole day, a run changes
 *   them by what the hour changed. The peak hour of a day does not pay for them.
 */
export async function writeHourCounts(
  pool: pg.Pool,
  hourStart: number,
  // The events count may still be running (beside these writes, in compactHourFromS3).
  counts: Omit<HourCounts, 'events'> & { events: number | Promise<number> },
  run: CompactionRun,
  listedAt: Date,
  clock = new PhaseClock(),
  /** Refuse (RawInputsGone) when retention's raw cutoff of this prefix has passed the hour. */
  rawPrefix?: string,
): Promise<{ revision: number; changed: boolean }> {
  const from = new Date(hourStart);
  const to = new Date(hourStart + HOUR_MS);
  const day = new Date(dayOf(hourStart));
  const nextDay = new Date(dayOf(hourStart) + DAY_MS);
  return inTransaction(pool, async (client) => {
    await client.query("set local time zone 'UTC'"); // the CSVs carry zone-less UTC timestamps
    await client.query("set local maintenance_work_mem = '1GB'"); // index builds of the minute rows
    // Two runs of the same hour (schedule, backfill, daily) may overlap: let them take turns.
    await client.query('select pg_advisory_xact_lock($1, $2)', [7_262_005, hourStart / HOUR_MS]);
    // The day's runs take turns too: each updates the day rows from the day's hour rows.
    await client.query('select pg_advisory_xact_lock($1, $2)', [7_262_006, dayOf(hourStart) / DAY_MS]);
    const expired = await expiredTables(
      client,
      COUNT_TABLES.flatMap((t) => [
        { table: t.minute, at: from },
        { table: t.hour, at: from },
        { table: t.day, at: day },
      ]),
    );
    const held = (table: string): boolean => !expired.has(table);
    if (rawPrefix !== undefined) {
      // Again under the hour's lock: retention records its cutoff before it deletes anything.
      const refused = refusal({
        hourStart,
        cutoff: await rawCutoffOf(client, rawPrefix),
        listed: [],
        recorded: [],
        iso: hourIso,
      });
      if (refused) throw new RawInputsGone(refused);
    }
    const was = await currentFinalization(client, hourStart);
    const dayRows = await dayRowsDue(client, hourStart);
    clock.lap('write: locks');
    const csvOf = {
      click_counts_minute: counts.csv.adMinute,
      click_counts_hour: counts.csv.adHour,
      advertiser_counts_minute: counts.csv.advertiserMinute,
      advertiser_counts_hour: counts.csv.advertiserHour,
    };
    const copyIn = async (table: string, csv: string, columns: string, freeze = false): Promise<void> => {
      if (counts.validClicks === 0) return;
      await pipeline(
        createReadStream(csv),
        client.query(
          copyFrom(`copy ${table} (${columns}) from stdin with (format csv${freeze ? ', freeze' : ''})`),
        ),
      );
    };
    const swaps: Array<{ staged: string; day: string; hour: string }> = [];
    for (const t of COUNT_TABLES) {
      if (held(t.minute)) {
        const partition = await hourPartitionOf(client, t.minute, hourStart);
        if (partition) {
          // Loaded without indexes, then indexed. FREEZE (the table is new in this transaction) spares
          // the later passes that set hint bits and freeze its rows. DDL is not MVCC-safe: a
          // repeatable-read snapshot older than the commit would see these rows (without FREEZE, an
          // empty hour); the app reads in read committed, where a statement waits for the swap.
          const staged = `${partition.hour}_n`;
          await client.query(
            `create table ${staged} (like ${t.minute} including defaults including constraints,
               constraint in_hour check (minute >= '${from.toISOString()}' and minute < '${to.toISOString()}'))`,
          );
          await copyIn(staged, csvOf[t.minute], `${t.key}, minute, clicks`, true);
          clock.lap(`write: ${t.minute} hour table loaded`);
          await client.query(
            `alter table ${staged} add constraint ${staged}_pkey primary key (${t.key}, minute)`,
          );
          await client.query(`create index ${staged}_minute_idx on ${staged} (minute)`);
          clock.lap(`write: ${t.minute} hour table indexed`);
          swaps.push({ staged, ...partition });
        } else {
          await client.query(`delete from ${t.minute} where minute >= $1 and minute < $2`, [from, to]);
          clock.lap(`write: ${t.minute} delete`);
          await copyIn(t.minute, csvOf[t.minute], `${t.key}, minute, clicks`);
          clock.lap(`write: ${t.minute} copy`);
        }
      }
      if (!held(t.hour)) continue; // without the hour rows the day rows cannot be recomputed
      const rollDay = held(t.day) && dayRows !== 'none';
      const previous = `previous_hour_rows_${t.key}`;
      // The hour's rows before this run: the day rows' update and the adjustments of a new revision.
      if (rollDay || was)
        await client.query(
          `create temp table ${previous} on commit drop as select ${t.key}, clicks from ${t.hour} where hour = $1`,
          [from],
        );
      await client.query(`delete from ${t.hour} where hour = $1`, [from]);
      await copyIn(t.hour, csvOf[t.hour], `${t.key}, hour, clicks`);
      clock.lap(`write: ${t.hour} replaced`);
      if (rollDay && dayRows === 'whole day') await writeDayRows(client, t, day, nextDay);
      else if (rollDay) await updateDayRows(client, t, from, previous, day, nextDay);
      clock.lap(`write: ${t.day} updated`);
    }
    if (swaps.length > 0) {
      // Last, and briefly: detaching takes the day partition's exclusive lock until commit. Give up
      // (the activity retries) rather than keep readers of the day queued behind a long reader.
      await client.query("set local lock_timeout = '30s'");
      for (const { staged, day: dayPartition, hour } of swaps) {
        await client.query(`alter table ${dayPartition} detach partition ${hour}`);
        await client.query(`drop table ${hour}`);
        await client.query(`alter table ${staged} rename to ${hour}`);
        await client.query(`alter index ${staged}_pkey rename to ${hour}_pkey`);
        await client.query(`alter index ${staged}_minute_idx rename to ${hour}_minute_idx`);
        // The in_hour constraint proves the partition's range: attaching scans nothing.
        await client.query(
          `alter table ${dayPartition} attach partition ${hour}
             for values from ('${from.toISOString()}') to ('${to.toISOString()}')`,
        );
      }
      clock.lap('write: minute hour tables swapped in');
    }
    const events = await counts.events;
    clock.lap('write: events count awaited');
    const done = await recordFinalization(client, hourStart, { ...counts, events }, run, listedAt, was);
    clock.lap('write: finalization recorded');
    if (was && done.changed)
      for (const t of COUNT_TABLES) {
        if (!held(t.hour)) continue;
        // Per key, the clicks before and after this revision, where they differ.
        await client.query(
          `insert into hour_adjustments (hour, revision, scope, id, clicks_before, clicks_after)
           select $1, $2, $3, coalesce(n.${t.key}, p.${t.key}), coalesce(p.clicks, 0), coalesce(n.clicks, 0)
             from (select ${t.key}, clicks from ${t.hour} where hour = $1) n
             full join previous_hour_rows_${t.key} p on p.${t.key} = n.${t.key}
            where coalesce(p.clicks, 0) <> coalesce(n.clicks, 0)
           on conflict do nothing`,
          [from, done.revision, t.key === 'ad_id' ? 'ad' : 'advertiser'],
        );
      }
    clock.lap('write: adjustments recorded');
    return done;
  });
}

/**
 * What this run does to the day rows: nothing while the day has an hour not finalized, write them all
 * when this run finalizes the day's last hour, update them when it finalizes an hour of a whole day
 * again. Runs of one day take turns (the day's advisory lock), so the answer holds until commit.
 */
async function dayRowsDue(
  client: pg.PoolClient,
  hourStart: number,
): Promise<'none' | 'whole day' | 'update'> {
  const day = dayOf(hourStart);
  const { rows } = await client.query<{ others: number; this_hour: boolean }>(
    `select count(*) filter (where hour <> $3)::int as others, bool_or(hour = $3) as this_hour
       from finalized_hours where hour >= $1 and hour < $2`,
    [new Date(day), new Date(day + DAY_MS), new Date(hourStart)],
  );
  const { others, this_hour: thisHour } = rows[0]!;
  if (others < 23) return 'none';
  return thisHour ? 'update' : 'whole day';
}

/**
 * The day rows of one key table for a day just made whole, from its hour rows. Rows of the day left
 * by a release that wrote day rows for partial days are replaced.
 */
async function writeDayRows(
  client: pg.PoolClient,
  t: (typeof COUNT_TABLES)[number],
  day: Date,
  nextDay: Date,
): Promise<void> {
  await client.query(`delete from ${t.day} where day = $1`, [day]);
  await client.query(
    `insert into ${t.day} (${t.key}, day, clicks)
     select ${t.key}, $1, sum(clicks) from ${t.hour} where hour >= $1 and hour < $2 group by ${t.key}`,
    [day, nextDay],
  );
}

/**
 * Updates the day rows of one key table (a whole day) for the hour starting `hour`, finalized again,
 * whose rows were `previous` (a temporary table) and are now in the hour table. An hour that had no
 * rows adds its counts to the day rows. Otherwise the day rows of the keys whose count in the hour
 * changed are recomputed from the day's hour rows: exact even if those rows had drifted, and nothing
 * to do when none changed.
 */
async function updateDayRows(
  client: pg.PoolClient,
  t: (typeof COUNT_TABLES)[number],
  hour: Date,
  previous: string,
  day: Date,
  nextDay: Date,
): Promise<void> {
  const hadRows = (await client.query(`select 1 from ${previous} limit 1`)).rowCount;
  if (!hadRows) {
    await client.query(
      `insert into ${t.day} (${t.key}, day, clicks) select ${t.key}, $1, clicks from ${t.hour} where hour = $2
       on conflict (${t.key}, day) do update set clicks = ${t.day}.clicks + excluded.clicks`,
      [day, hour],
    );
    return;
  }
  const keys = `changed_keys_${t.key}`;
  await client.query(
    `create temp table ${keys} on commit drop as
     select ${t.key} from (select ${t.key}, clicks from ${t.hour} where hour = $1
                           union all select ${t.key}, -clicks from ${previous}) c
      group by ${t.key} having sum(clicks) <> 0`,
    [hour],
  );
  await client.query(`analyze ${keys}`);
  await client.query(`delete from ${t.day} where day = $1 and ${t.key} in (select ${t.key} from ${keys})`, [
    day,
  ]);
  await client.query(
    `insert into ${t.day} (${t.key}, day, clicks)
     select ${t.key}, $1, sum(clicks) from ${t.hour}
      where hour >= $1 and hour < $2 and ${t.key} in (select ${t.key} from ${keys})
      group by ${t.key}`,
    [day, nextDay],
  );
}

/** The hour's current finalization (under the hour's lock), if any. */
async function currentFinalization(
  client: pg.PoolClient,
  hourStart: number,
): Promise<Finalization | undefined> {
  const { rows } = await client.query<{ revision: number; valid_clicks: string; events: string }>(
    'select revision, valid_clicks, events from finalized_hours where hour = $1',
    [new Date(hourStart)],
  );
  const r = rows[0];
  return r && { revision: r.revision, validClicks: Number(r.valid_clicks), events: Number(r.events) };
}

/** A finalization refused because the hour's raw inputs are gone (decisions.ts, `refusal`). */
export class RawInputsGone extends Error {
  override name = 'RawInputsGone';
}

/**
 * Marks the hour finalized by `run`. A run whose numbers differ from the hour's current revision (or
 * the hour's first) makes a new revision, kept in hour_revisions; one that changes nothing keeps the
 * revision and its time, so `revision` changes exactly when a final number may have.
 */
async function recordFinalization(
  client: pg.PoolClient,
  hourStart: number,
  counts: HourCounts,
  run: CompactionRun,
  listedAt: Date,
  was: Finalization | undefined,
): Promise<{ revision: number; changed: boolean }> {
  const hour = new Date(hourStart);
  const { revision, changed } = nextRevision(was, counts);
  await client.query(
    `insert into finalized_hours (hour, run_id, workflow_id, finalized_at, valid_clicks, events, revision, listed_at)
     values ($1, $2, $3, now(), $4, $5, $6, $7)
     on conflict (hour) do update set run_id = excluded.run_id, workflow_id = excluded.workflow_id,
       valid_clicks = excluded.valid_clicks, events = excluded.events, listed_at = excluded.listed_at,
       revision = excluded.revision,
       finalized_at = case when $8 then excluded.finalized_at else finalized_hours.finalized_at end`,
    [hour, run.runId, run.workflowId, counts.validClicks, counts.events, revision, listedAt, changed],
  );
  await client.query('delete from hour_failures where hour = $1', [hour]);
  if (changed)
    await client.query(
      `insert into hour_revisions (hour, revision, finalized_at, run_id, workflow_id, valid_clicks, events)
       values ($1, $2, now(), $3, $4, $5, $6) on conflict (hour, revision) do nothing`,
      [hour, revision, run.runId, run.workflowId, counts.validClicks, counts.events],
    );
  return { revision, changed };
}

/** The whole hourly compaction: list, download, index, count, write. Safe to run again. */
export async function compactHourFromS3(
  deps: CompactionDeps,
  hourStart: number,
  run: CompactionRun,
  onProgress: Progress = () => undefined,
): Promise<CompactHourResult> {
  const clock = new PhaseClock();
  const dir = hourDir(deps, hourStart);
  await mkdir(dir, { recursive: true });
  onProgress({ phase: 'listing', filesDone: 0, filesTotal: 0 });
  // On the database's clock, before the listing: a raw file recorded after this is late for this run.
  const listedAt = (await deps.pool.query<{ now: Date }>('select now()')).rows[0]!.now;
  const raw = await listObjects(deps.s3, deps.bucket, rawHourPrefix(deps.prefix, hourStart));
  // Never lower an hour because its inputs are gone: past the raw cutoff, or a file the archiver
  // recorded (before this listing) missing from it.
  const cutoff = await rawCutoffOf(deps.pool, deps.prefix);
  const refused = refusal({
    hourStart,
    cutoff,
    listed: raw.map((o) => o.key),
    recorded: await recordedRawKeys(deps.pool, hourStart, deps.prefix, listedAt),
    iso: hourIso,
  });
  if (refused) throw new RawInputsGone(refused);
  clock.lap('list');
  let done = 0;
  const files = await downloadAll(deps, raw, join(dir, 'raw'), () =>
    onProgress({ phase: 'downloading', filesDone: ++done, filesTotal: raw.length }),
  );
  clock.lap('download');
  if (deps.faultPauseMs) await new Promise((r) => setTimeout(r, deps.faultPauseMs));
  onProgress({ phase: 'indexing', filesDone: done, filesTotal: raw.length });
  const earlier: string[] = [];
  for (const before of lookbackHoursOf(hourStart, deps.lookbackHours, HOUR_MS)) {
    const path = await seenIndexOf(deps, before, dir, cutoff);
    if (path) earlier.push(path);
  }
  clock.lap('lookback seen indexes');
  onProgress({ phase: 'counting', filesDone: done, filesTotal: raw.length });
  const indexPath = join(dir, 'seen-index.parquet');
  const { counts, rest, restClock } = await countRollups(files, earlier, hourStart, dir, indexPath, clock);
  // The hour's seen index and its events count (DuckDB), then the index's upload, run beside the
  // PostgreSQL writes: each side keeps a core busy.
  const indexed = rest.then(async (events) => {
    if (files.length > 0) await publishSeenIndex(deps, hourStart, raw, indexPath);
    restClock.lap('seen index published');
    return events;
  });
  onProgress({ phase: 'writing', filesDone: done, filesTotal: raw.length });
  const [written, published] = await Promise.allSettled([
    writeHourCounts(deps.pool, hourStart, { ...counts, events: rest }, run, listedAt, clock, deps.prefix),
    indexed,
  ]);
  if (written.status === 'rejected') throw written.reason;
  if (published.status === 'rejected') throw published.reason;
  const { revision, changed } = written.value;
  const events = published.value;
  clock.lap('seen index publication awaited');
  onProgress({ phase: 'publishing-index', filesDone: done, filesTotal: raw.length });
  onProgress({ phase: 'done', filesDone: done, filesTotal: raw.length });
  await rm(dir, { recursive: true, force: true });
  return {
    hour: hourIso(hourStart),
    revision,
    changed,
    files: raw.length,
    events,
    validClicks: counts.validClicks,
    adMinutes: counts.adMinutes,
    adHours: counts.adHours,
    seenEarlier: counts.seenEarlier,
    phases: [...clock.phases, ...restClock.phases.map((p) => ({ ...p, besideWrites: true }))],
  };
}

/**
 * Publishes the hour's seen index under the name of the raw files it covers, replacing older ones.
 * Which later hours must be finalized again does not depend on it: the late path derives them from
 * durable state (decisions.ts, `staleHours`), which no other compaction can consume.
 */
async function publishSeenIndex(
  deps: CompactionDeps,
  hourStart: number,
  raw: readonly S3Object[],
  indexPath: string,
): Promise<void> {
  const key = seenIndexKey(
    deps.prefix,
    hourStart,
    raw.map((o) => o.key),
  );
  const existing = await listObjects(deps.s3, deps.bucket, seenIndexHourPrefix(deps.prefix, hourStart));
  await replaceSeenIndex(deps, key, indexPath, existing);
}

/** Uploads an hour's seen index as `key` and deletes the hour's older ones. */
async function replaceSeenIndex(
  deps: CompactionDeps,
  key: string,
  path: string,
  older: readonly S3Object[],
): Promise<void> {
  await uploadFile(deps.s3, deps.bucket, key, path);
  await deleteObjects(
    deps.s3,
    deps.bucket,
    older.map((o) => o.key).filter((k) => k !== key),
  );
}
