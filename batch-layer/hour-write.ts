// The hour's counts into the PostgreSQL count tables (BATCH_STORE=postgres), in one transaction that
// replaces the hour and records its finalization (revisions.ts).
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { inTransaction } from '../common/db.js';
import { DAY_MS, HOUR_MS, dayOf } from '../common/time.js';
import { COUNT_TABLES, dayPlan, stagedName, swapStatements, type CountTables } from './count-tables.js';
import { dayRowsDue, lockDay, updateDayRows, writeDayRows } from './day-rows.js';
import type { CountFiles, PendingHourCounts } from './hour-count.js';
import { expiredTables, hourPartitionOf } from './partitions.js';
import { PhaseClock } from './phase-clock.js';
import {
  currentFinalization,
  lockHour,
  recordFinalization,
  refuseIfPastCutoff,
  type CompactionRun,
} from './revisions.js';

/** One hour's write transaction: its bounds, its client, and what is known once locked. */
interface HourWrite {
  client: pg.PoolClient;
  hourStart: number;
  from: Date;
  to: Date;
  day: Date;
  nextDay: Date;
  counts: PendingHourCounts;
  clock: PhaseClock;
}

/** A minute table staged for the hour, swapped in for its partition at the end. */
interface Swap {
  staged: string;
  day: string;
  hour: string;
}

/**
 * Replaces the hour's rows (minutes, hour rollups, day rollups; per ad and per advertiser) and marks
 * it finalized, atomically. A tier whose partition of the hour retention has dropped is left alone
 * (batch-layer/partitions.ts): the hour updates the tiers that still hold it.
 * - Minute rows: when the hour has its own partition, a new table is loaded, indexed and swapped in
 *   for it at the end (building an index from sorted rows is several times cheaper than inserting
 *   the rows into the indexes of a day); otherwise the hour's rows are deleted and copied in.
 * - Day rows exist for whole days only (day-rows.ts). The peak hour of a day does not pay for them.
 */
export async function writeHourCounts(
  pool: pg.Pool,
  hourStart: number,
  // The events count may still be running (beside these writes, in compactHourFromS3).
  counts: PendingHourCounts,
  run: CompactionRun,
  listedAt: Date,
  clock = new PhaseClock(),
  /** Refuse (RawInputsGone) when retention's raw cutoff of this prefix has passed the hour. */
  rawPrefix?: string,
): Promise<{ revision: number; changed: boolean }> {
  return inTransaction(pool, async (client) => {
    const w: HourWrite = {
      client,
      hourStart,
      from: new Date(hourStart),
      to: new Date(hourStart + HOUR_MS),
      day: new Date(dayOf(hourStart)),
      nextDay: new Date(dayOf(hourStart) + DAY_MS),
      counts,
      clock,
    };
    await client.query("set local time zone 'UTC'"); // the CSVs carry zone-less UTC timestamps
    await client.query("set local maintenance_work_mem = '1GB'"); // index builds of the minute rows
    await lockHour(client, hourStart);
    await lockDay(client, hourStart);
    const held = await heldTables(w);
    await refuseIfPastCutoff(client, hourStart, rawPrefix);
    const was = await currentFinalization(client, hourStart);
    const action = await dayRowsDue(client, hourStart);
    clock.lap('write: locks');
    const swaps: Swap[] = [];
    for (const t of COUNT_TABLES) {
      if (held(t.minute)) {
        const swap = await replaceMinuteRows(w, t);
        if (swap) swaps.push(swap);
      }
      const plan = dayPlan({ hourHeld: held(t.hour), dayHeld: held(t.day), action, refinalized: !!was });
      if (held(t.hour)) await replaceHourRows(w, t, plan);
    }
    await swapIn(w, swaps);
    const events = await counts.events;
    clock.lap('write: events count awaited');
    const done = await recordFinalization(client, hourStart, { ...counts, events }, run, listedAt, was);
    clock.lap('write: finalization recorded');
    if (was && done.changed)
      for (const t of COUNT_TABLES) if (held(t.hour)) await recordAdjustments(w, t, done.revision);
    clock.lap('write: adjustments recorded');
    return done;
  });
}

/** Which count tables still hold the hour (retention may have dropped a tier's partition). */
async function heldTables(w: HourWrite): Promise<(table: string) => boolean> {
  const expired = await expiredTables(
    w.client,
    COUNT_TABLES.flatMap((t) => [
      { table: t.minute, at: w.from },
      { table: t.hour, at: w.from },
      { table: t.day, at: w.day },
    ]),
  );
  return (table) => !expired.has(table);
}

const csvOf = (csv: CountFiles, table: string): string =>
  ({
    click_counts_minute: csv.adMinute,
    click_counts_hour: csv.adHour,
    advertiser_counts_minute: csv.advertiserMinute,
    advertiser_counts_hour: csv.advertiserHour,
  })[table]!;

/** COPYs the CSV of `table`'s rows into `into` (nothing when the hour has no valid click). */
async function copyIn(
  w: HourWrite,
  into: string,
  table: string,
  columns: string,
  freeze = false,
): Promise<void> {
  if (w.counts.validClicks === 0) return;
  await pipeline(
    createReadStream(csvOf(w.counts.csv, table)),
    w.client.query(
      copyFrom(`copy ${into} (${columns}) from stdin with (format csv${freeze ? ', freeze' : ''})`),
    ),
  );
}

/**
 * The hour's minute rows: into a staged table when the hour has its own partition (returned, to be
 * swapped in), else deleted and copied in place.
 */
async function replaceMinuteRows(w: HourWrite, t: CountTables): Promise<Swap | undefined> {
  const { client, from, to, clock } = w;
  const partition = await hourPartitionOf(client, t.minute, w.hourStart);
  if (!partition) {
    await client.query(`delete from ${t.minute} where minute >= $1 and minute < $2`, [from, to]);
    clock.lap(`write: ${t.minute} delete`);
    await copyIn(w, t.minute, t.minute, `${t.key}, minute, clicks`);
    clock.lap(`write: ${t.minute} copy`);
    return undefined;
  }
  // Loaded without indexes, then indexed. FREEZE (the table is new in this transaction) spares
  // the later passes that set hint bits and freeze its rows. DDL is not MVCC-safe: a
  // repeatable-read snapshot older than the commit would see these rows (without FREEZE, an
  // empty hour); the app reads in read committed, where a statement waits for the swap.
  const staged = stagedName(partition.hour);
  await client.query(
    `create table ${staged} (like ${t.minute} including defaults including constraints,
       constraint in_hour check (minute >= '${from.toISOString()}' and minute < '${to.toISOString()}'))`,
  );
  await copyIn(w, staged, t.minute, `${t.key}, minute, clicks`, true);
  clock.lap(`write: ${t.minute} hour table loaded`);
  await client.query(`alter table ${staged} add constraint ${staged}_pkey primary key (${t.key}, minute)`);
  await client.query(`create index ${staged}_minute_idx on ${staged} (minute)`);
  clock.lap(`write: ${t.minute} hour table indexed`);
  return { staged, ...partition };
}

/** The hour's rollup rows replaced; the day rows written or updated as planned. */
async function replaceHourRows(
  w: HourWrite,
  t: CountTables,
  plan: ReturnType<typeof dayPlan>,
): Promise<void> {
  const { client, from, clock } = w;
  const previous = `previous_hour_rows_${t.key}`;
  // The hour's rows before this run: the day rows' update and the adjustments of a new revision.
  if (plan.keepPrevious)
    await client.query(
      `create temp table ${previous} on commit drop as select ${t.key}, clicks from ${t.hour} where hour = $1`,
      [from],
    );
  await client.query(`delete from ${t.hour} where hour = $1`, [from]);
  await copyIn(w, t.hour, t.hour, `${t.key}, hour, clicks`);
  clock.lap(`write: ${t.hour} replaced`);
  if (plan.day === 'whole day') await writeDayRows(client, t, w.day, w.nextDay);
  else if (plan.day === 'update') await updateDayRows(client, t, from, previous, w.day, w.nextDay);
  clock.lap(`write: ${t.day} updated`);
}

/**
 * Last, and briefly: detaching takes the day partition's exclusive lock until commit. Give up (the
 * activity retries) rather than keep readers of the day queued behind a long reader.
 */
async function swapIn(w: HourWrite, swaps: readonly Swap[]): Promise<void> {
  if (swaps.length === 0) return;
  await w.client.query("set local lock_timeout = '30s'");
  for (const swap of swaps) for (const sql of swapStatements(swap, w.from, w.to)) await w.client.query(sql);
  w.clock.lap('write: minute hour tables swapped in');
}

/** Per key, the clicks before and after this revision, where they differ (hour_adjustments). */
async function recordAdjustments(w: HourWrite, t: CountTables, revision: number): Promise<void> {
  await w.client.query(
    `insert into hour_adjustments (hour, revision, scope, id, clicks_before, clicks_after)
     select $1, $2, $3, coalesce(n.${t.key}, p.${t.key}), coalesce(p.clicks, 0), coalesce(n.clicks, 0)
       from (select ${t.key}, clicks from ${t.hour} where hour = $1) n
       full join previous_hour_rows_${t.key} p on p.${t.key} = n.${t.key}
      where coalesce(p.clicks, 0) <> coalesce(n.clicks, 0)
     on conflict do nothing`,
    [w.from, revision, t.key === 'ad_id' ? 'ad' : 'advertiser'],
  );
}
