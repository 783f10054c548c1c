// Day rows exist for whole days only (every hour finalized), the only days the API reads them for:
// the run that makes a day whole writes them from the day's hour rows; in a whole day, a run changes
// them by what the hour changed. Runs of one day take turns (the day's advisory lock), so the answer
// of `dayRowsDue` holds until commit.
import type pg from 'pg';
import { DAY_MS, dayOf } from '../common/time.js';
import { dayRowsAction, type CountTables, type DayRowsAction } from './count-tables.js';

/** Takes the day's advisory lock until the transaction ends: each run updates the day rows. */
export async function lockDay(client: pg.PoolClient, hourStart: number): Promise<void> {
  await client.query('select pg_advisory_xact_lock($1, $2)', [7_262_006, dayOf(hourStart) / DAY_MS]);
}

/** What this run does to the day rows (count-tables.ts, `dayRowsAction`). */
export async function dayRowsDue(client: pg.PoolClient, hourStart: number): Promise<DayRowsAction> {
  const day = dayOf(hourStart);
  const { rows } = await client.query<{ others: number; this_hour: boolean }>(
    `select count(*) filter (where hour <> $3)::int as others, bool_or(hour = $3) as this_hour
       from finalized_hours where hour >= $1 and hour < $2`,
    [new Date(day), new Date(day + DAY_MS), new Date(hourStart)],
  );
  const { others, this_hour: thisHour } = rows[0]!;
  return dayRowsAction(others, thisHour === true);
}

/**
 * The day rows of one key table for a day just made whole, from its hour rows. Rows of the day left
 * by a release that wrote day rows for partial days are replaced.
 */
export async function writeDayRows(
  client: pg.PoolClient,
  t: CountTables,
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
export async function updateDayRows(
  client: pg.PoolClient,
  t: CountTables,
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
