// Counting one hour with DuckDB: the first valid click per impression (DESIGN rule 1), minus the
// impressions seen in the hours before it, per (ad, minute), (ad, hour), (advertiser, minute) and
// (advertiser, hour), each into a CSV for PostgreSQL COPY. Deterministic: the same files, the same rows.
import { basename, join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import { PhaseClock } from './phase-clock.js';
import { duckConnect, sqlFileList, sqlString } from './parquet.js';
import { SEEN_INDEX_FORMAT, validInHour } from './seen-index.js';

/** The hour's rows, one CSV per table, ready for PostgreSQL COPY. */
export interface CountFiles {
  adMinute: string;
  adHour: string;
  advertiserMinute: string;
  advertiserHour: string;
}

export interface HourCounts {
  csv: CountFiles;
  /** Distinct Kafka messages of the hour, all statuses. */
  events: number;
  validClicks: number;
  adMinutes: number;
  adHours: number;
  seenEarlier: number;
}

/** The hour's counts while its events count may still be running (beside the writes). */
export type PendingHourCounts = Omit<HourCounts, 'events'> & { events: number | Promise<number> };

/** The hour's rows, and the work left once they are out: its seen index and its Kafka message count. */
export interface HourRollups {
  counts: Omit<HourCounts, 'events'>;
  /**
   * Writes the hour's own seen index (when asked) and counts the hour's distinct Kafka messages, then
   * releases the DuckDB tables: it can run while PostgreSQL takes the rows.
   */
  rest: Promise<number>;
  /** The steps of `rest`, timed apart (they overlap the writes). */
  restClock: PhaseClock;
}

/** The four CSVs of an hour under `outDir`. */
export const countFilesIn = (outDir: string): CountFiles => ({
  adMinute: join(outDir, 'ad-minute.csv'),
  adHour: join(outDir, 'ad-hour.csv'),
  advertiserMinute: join(outDir, 'advertiser-minute.csv'),
  advertiserHour: join(outDir, 'advertiser-hour.csv'),
});

/** Timestamps leave as zone-less UTC text (DuckDB's own rendering, far cheaper than strftime). */
const ts = (ms: string): string => `make_timestamp((${ms}) * 1000)`;

/**
 * The four selects of an hour's rows, from its (ad, minute) cells table and its counted clicks table.
 * Sorted by primary key: PostgreSQL's index builds and inserts stay local. The ad-hour rows are the
 * sums of the cells (a third of the rows to group).
 */
export function rollupSelects(
  cells: string,
  counted: string,
  hourStart: number,
): Record<keyof CountFiles, string> {
  return {
    adMinute: `select ad_id, ${ts('minute * 60000')}, clicks from ${cells} order by ad_id, minute`,
    adHour: `select ad_id, ${ts(String(hourStart))}, sum(clicks) from ${cells} group by ad_id order by ad_id`,
    advertiserMinute: `select advertiser_id, ${ts('(ts // 60000) * 60000')} as minute, count(*) from ${counted}
       group by advertiser_id, minute order by advertiser_id, minute`,
    advertiserHour: `select advertiser_id, ${ts(String(hourStart))}, count(*) from ${counted} group by advertiser_id order by advertiser_id`,
  };
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

/** One hour's DuckDB session: its temporary tables share the name `t`. */
interface Session {
  conn: DuckDBConnection;
  t: string;
  files: readonly string[];
  hourStart: number;
  clock: PhaseClock;
}

/** The hour's rows into CSVs (`counts`), and its seen index and events count left to run (`rest`). */
export async function countRollups(
  files: readonly string[],
  earlierIndexes: readonly string[],
  hourStart: number,
  outDir: string,
  seenIndexPath: string | undefined,
  clock: PhaseClock,
): Promise<HourRollups> {
  const csv = countFilesIn(outDir);
  if (files.length === 0)
    return {
      counts: { csv, validClicks: 0, adMinutes: 0, adHours: 0, seenEarlier: 0 },
      rest: Promise.resolve(0),
      restClock: new PhaseClock(),
    };
  const s: Session = {
    conn: await duckConnect(),
    t: `first_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e9)}`,
    files,
    hourStart,
    clock,
  };
  let counts: HourRollups['counts'];
  try {
    await firstClicks(s);
    const { counted, seenEarlier } = await withoutSeenEarlier(s, earlierIndexes);
    counts = { csv, seenEarlier, ...(await writeRollups(s, counted, csv)) };
  } catch (e) {
    await release(s);
    throw e;
  }
  const restClock = new PhaseClock();
  return { counts, rest: seenIndexAndEvents(s, seenIndexPath, restClock), restClock };
}

async function release(s: Session): Promise<void> {
  for (const table of [`${s.t}_cells`, `${s.t}_counted`, s.t])
    await s.conn.run(`drop table if exists temp.${table}`).catch(() => undefined);
  s.conn.closeSync();
}

const countOf = async (s: Session, sql: string): Promise<number> =>
  Number((await s.conn.runAndReadAll(sql)).getRowObjectsJS()[0]!.n);

/** Table `t`: the first valid click of each impression of the hour. */
async function firstClicks(s: Session): Promise<void> {
  await s.conn.run(
    `create temp table ${s.t} as
     select event_id, min(ts) as ts, arg_min(ad_id, ts) as ad_id, arg_min(advertiser_id, ts) as advertiser_id
     from (${validInHour(s.files, s.hourStart)}) group by event_id`,
  );
  s.clock.lap('dedup: first valid click per impression');
}

/**
 * The clicks counted here: the impressions seen in an earlier hour go. The table of all of them
 * stays for this hour's own seen index (for the hours after it), which must not depend on the
 * order hours are compacted in.
 */
async function withoutSeenEarlier(
  s: Session,
  earlierIndexes: readonly string[],
): Promise<{ counted: string; seenEarlier: number }> {
  if (earlierIndexes.length === 0) return { counted: s.t, seenEarlier: 0 };
  const counted = `${s.t}_counted`;
  await s.conn.run(
    `create temp table ${counted} as select * from ${s.t}
      where not exists (select 1 from read_parquet(${sqlFileList(earlierIndexes)}) e
                         where e.event_id = ${s.t}.event_id)`,
  );
  const seenEarlier = await countOf(
    s,
    `select (select count(*) from ${s.t}) - (select count(*) from ${counted}) as n`,
  );
  s.clock.lap('dedup: impressions seen earlier removed');
  return { counted, seenEarlier };
}

/** The four CSVs of the hour, from its counted clicks; their row counts and the valid clicks. */
async function writeRollups(
  s: Session,
  counted: string,
  csv: CountFiles,
): Promise<{ validClicks: number; adMinutes: number; adHours: number }> {
  const copyCsv = async (select: string, path: string): Promise<number> => {
    const r = await s.conn.runAndReadAll(`copy (${select}) to ${sqlString(path)} (format csv, header false)`);
    s.clock.lap(`count: ${basename(path, '.csv')} rows`);
    return r.rowsChanged;
  };
  // The (ad, minute) cells, kept: the ad-hour rows are their sums.
  const cells = `${s.t}_cells`;
  await s.conn.run(
    `create temp table ${cells} as select ad_id, ts // 60000 as minute, count(*) as clicks from ${counted}
     group by ad_id, minute`,
  );
  s.clock.lap('count: ad-minute cells');
  const selects = rollupSelects(cells, counted, s.hourStart);
  const adMinutes = await copyCsv(selects.adMinute, csv.adMinute);
  const adHours = await copyCsv(selects.adHour, csv.adHour);
  await copyCsv(selects.advertiserMinute, csv.advertiserMinute);
  await copyCsv(selects.advertiserHour, csv.advertiserHour);
  const validClicks = await countOf(s, `select count(*) as n from ${counted}`);
  return { validClicks, adMinutes, adHours };
}

/** The hour's own seen index (when asked) and its distinct Kafka messages; then the session ends. */
async function seenIndexAndEvents(
  s: Session,
  seenIndexPath: string | undefined,
  restClock: PhaseClock,
): Promise<number> {
  try {
    if (seenIndexPath) {
      await s.conn.run(
        `copy (select event_id from ${s.t}) to ${sqlString(seenIndexPath)} ${SEEN_INDEX_FORMAT}`,
      );
      restClock.lap('own seen index written');
    }
    const events = await countOf(
      s,
      `select count(*) as n from (select distinct kafka_partition, kafka_offset from read_parquet(${sqlFileList(s.files)}))`,
    );
    restClock.lap('events (distinct Kafka messages)');
    return events;
  } finally {
    await release(s);
  }
}
