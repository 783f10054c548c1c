// Time partitions of the authoritative counts (common/retention.ts has the tiers): creates each
// tier's partitions ahead of time, moving into a new partition the rows its range holds in the
// table's DEFAULT partition, and expires a tier by dropping whole partitions. Each table's default
// partition (`<table>_default`) holds what no named partition covers; retention never drops it.
// A day partition of the minute tier is itself split into 24 hour partitions: compaction replaces an
// hour of minute rows by swapping in a table loaded and indexed apart (batch-layer/compaction.ts),
// which costs far less than inserting ~13M rows into a day's indexes.
import type pg from 'pg';
import { inTransaction } from '../common/db.js';
import { HOUR_MS } from '../common/time.js';
import {
  nextPartitionStart,
  partitionExpired,
  partitionName,
  partitionStart,
  wantedPartitions,
  type Tier,
} from '../common/retention.js';

/** One partition maintainer at a time (the schedule, a worker start, a test on its own tables). */
const MAINTENANCE_LOCK = 7_262_018;

export interface PartitionChange {
  table: string;
  partition: string;
  from: string;
  to: string;
  /** Rows moved in from the default partition (created), or 0. */
  movedRows?: number;
}

/** Named partitions of `table` (`<table>_pYYYY[MM[DD]]`) with their start. */
export async function listPartitions(
  pool: pg.Pool,
  table: string,
  tier: Pick<Tier, 'unit'>,
): Promise<Array<{ name: string; start: number }>> {
  const { rows } = await pool.query<{ name: string }>(
    `select c.relname as name from pg_inherits i
       join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
     where p.relname = $1 and c.relname like $1 || '\\_p%' order by 1`,
    [table],
  );
  const digits = tier.unit === 'day' ? 8 : tier.unit === 'month' ? 6 : 4;
  return rows.flatMap(({ name }) => {
    const m = new RegExp(`_p(\\d{${digits}})$`).exec(name);
    if (!m) return [];
    const s = m[1]!;
    const start = Date.UTC(
      Number(s.slice(0, 4)),
      digits > 4 ? Number(s.slice(4, 6)) - 1 : 0,
      digits > 6 ? Number(s.slice(6, 8)) : 1,
    );
    return [{ name, start }];
  });
}

/**
 * Creates the tier's partitions from its horizon to `ahead` partitions past now (those missing).
 * A range already dropped by retention is not created again.
 */
export async function ensurePartitions(pool: pg.Pool, tier: Tier, now: number): Promise<PartitionChange[]> {
  const created: PartitionChange[] = [];
  for (const table of tier.tables) {
    const have = new Set((await listPartitions(pool, table, tier)).map((p) => p.start));
    for (const start of wantedPartitions(tier, now)) {
      if (have.has(start)) continue;
      const change = await createPartition(pool, table, tier, start);
      if (change) created.push(change);
    }
  }
  return created;
}

async function createPartition(
  pool: pg.Pool,
  table: string,
  tier: Tier,
  start: number,
): Promise<PartitionChange | undefined> {
  const name = partitionName(table, start, tier.unit);
  const from = new Date(start);
  const to = new Date(nextPartitionStart(start, tier.unit));
  const col = tier.timeColumn;
  const hourly = splitByHour(tier);
  return inTransaction(pool, async (client) => {
    await client.query('select pg_advisory_xact_lock($1)', [MAINTENANCE_LOCK]);
    const exists = await client.query('select 1 from pg_class where relname = $1', [name]);
    if (exists.rowCount) return undefined;
    const gone = await client.query(
      'select 1 from expired_partitions where table_name = $1 and range_from = $2',
      [table, from],
    );
    if (gone.rowCount) return undefined;
    // Writers of the default partition wait while its rows of the range move (readers do not).
    await client.query("set local lock_timeout = '30s'");
    await client.query(`lock table ${table}_default in exclusive mode`);
    await client.query(
      `create table ${name} (like ${table} including defaults including constraints)${hourly ? ` partition by range (${col})` : ''}`,
    );
    if (hourly)
      for (let h = start; h < to.getTime(); h += HOUR_MS)
        await client.query(
          `create table ${hourPartitionName(name, h)} partition of ${name}
             for values from ('${new Date(h).toISOString()}') to ('${new Date(h + HOUR_MS).toISOString()}')`,
        );
    const moved = await client.query(
      `with moved as (delete from ${table}_default where ${col} >= $1 and ${col} < $2 returning *)
       insert into ${name} select * from moved`,
      [from, to],
    );
    await client.query(
      `alter table ${table} attach partition ${name} for values from ('${from.toISOString()}') to ('${to.toISOString()}')`,
    );
    return {
      table,
      partition: name,
      from: from.toISOString(),
      to: to.toISOString(),
      movedRows: moved.rowCount ?? 0,
    };
  });
}

/** The minute tier's day partitions are split into hour partitions (the unit compaction replaces). */
const splitByHour = (tier: Pick<Tier, 'unit' | 'timeColumn'>): boolean =>
  tier.unit === 'day' && tier.timeColumn === 'minute';

/** `click_counts_minute_p20261201_h13`: the hour partition of a day partition. */
const hourPartitionName = (dayPartition: string, hourStart: number): string =>
  `${dayPartition}_h${new Date(hourStart).toISOString().slice(11, 13)}`;

/**
 * The hour partition of `table` (a minute-tier table) holding `hourStart` and its day partition, when
 * the day is split by hour; undefined when the hour lives in an unsplit day partition (created
 * before the split) or in the default partition.
 */
export async function hourPartitionOf(
  db: pg.Pool | pg.PoolClient,
  table: string,
  hourStart: number,
): Promise<{ day: string; hour: string } | undefined> {
  const day = partitionName(table, partitionStart(hourStart, 'day'), 'day');
  const hour = hourPartitionName(day, hourStart);
  const { rowCount } = await db.query(
    `select 1 from pg_inherits i join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent
      where c.relname = $1 and p.relname = $2`,
    [hour, day],
  );
  return rowCount ? { day, hour } : undefined;
}

/** Drops the tier's partitions wholly older than its horizon, recording each dropped range. */
export async function dropExpiredPartitions(
  pool: pg.Pool,
  tier: Tier,
  now: number,
): Promise<PartitionChange[]> {
  const dropped: PartitionChange[] = [];
  for (const table of tier.tables) {
    for (const { name, start } of await listPartitions(pool, table, tier)) {
      if (!partitionExpired(tier, start, now)) continue;
      const from = new Date(start);
      const to = new Date(nextPartitionStart(start, tier.unit));
      await inTransaction(pool, async (client) => {
        await client.query('select pg_advisory_xact_lock($1)', [MAINTENANCE_LOCK]);
        // Dropping a partition locks its parent: give up (next run) rather than queue reads behind it.
        await client.query("set local lock_timeout = '10s'");
        await client.query(
          `insert into expired_partitions (table_name, range_from, range_to) values ($1, $2, $3)
           on conflict (table_name, range_from) do nothing`,
          [table, from, to],
        );
        await client.query(`drop table if exists ${name}`);
      });
      dropped.push({ table, partition: name, from: from.toISOString(), to: to.toISOString() });
    }
  }
  return dropped;
}

/**
 * The tables of `tables` whose partition holding `at` was dropped by retention: compaction leaves
 * them alone (a late click of an hour older than a tier updates the tiers that still hold it).
 */
export async function expiredTables(
  db: pg.Pool | pg.PoolClient,
  tables: ReadonlyArray<{ table: string; at: Date }>,
): Promise<Set<string>> {
  const { rows } = await db.query<{ table_name: string }>(
    `select e.table_name from expired_partitions e
       join unnest($1::text[], $2::timestamptz[]) as t(name, at) on e.table_name = t.name
     where e.range_from <= t.at and t.at < e.range_to`,
    [tables.map((t) => t.table), tables.map((t) => t.at)],
  );
  return new Set(rows.map((r) => r.table_name));
}

export { partitionStart };
