// The PostgreSQL count tables the batch layer writes, and the pure choices of what an hour's run does
// to them. No I/O: unit-tested in count-tables.test.ts.

/** The count tables of one key (per ad, per advertiser): minute, hour and day tiers. */
export const COUNT_TABLES = [
  { key: 'ad_id', minute: 'click_counts_minute', hour: 'click_counts_hour', day: 'click_counts_day' },
  {
    key: 'advertiser_id',
    minute: 'advertiser_counts_minute',
    hour: 'advertiser_counts_hour',
    day: 'advertiser_counts_day',
  },
] as const;

export type CountTables = (typeof COUNT_TABLES)[number];

/** What a run does to a day's rows (see `dayRowsAction`). */
export type DayRowsAction = 'none' | 'whole day' | 'update';

/**
 * What this run does to the day rows, from the day's other finalized hours and whether this hour was
 * finalized before: nothing while the day has an hour not finalized, write them all when this run
 * finalizes the day's last hour, update them when it finalizes an hour of a whole day again.
 */
export function dayRowsAction(
  othersFinalized: number,
  thisHourFinalized: boolean,
  hoursInDay = 24,
): DayRowsAction {
  if (othersFinalized < hoursInDay - 1) return 'none';
  return thisHourFinalized ? 'update' : 'whole day';
}

/**
 * What the run does to one key's day rows, given which tiers retention still holds: the day rows are
 * recomputed from the hour rows, so without the hour tier (or the day tier) they are left alone. The
 * hour's previous rows are kept aside when the day rows or the adjustments of a new revision need them.
 */
export function dayPlan(f: {
  hourHeld: boolean;
  dayHeld: boolean;
  action: DayRowsAction;
  refinalized: boolean;
}): { keepPrevious: boolean; day: DayRowsAction } {
  if (!f.hourHeld) return { keepPrevious: false, day: 'none' };
  const day = f.dayHeld ? f.action : 'none';
  return { keepPrevious: day !== 'none' || f.refinalized, day };
}

/**
 * The statements that swap a staged minute table in for the hour's partition of a day partition: the
 * old hour table goes, the staged one takes its name, its indexes' names and its place. The staged
 * table's in_hour constraint proves the range, so attaching scans nothing.
 */
export function swapStatements(
  swap: { staged: string; day: string; hour: string },
  from: Date,
  to: Date,
): string[] {
  const { staged, day, hour } = swap;
  return [
    `alter table ${day} detach partition ${hour}`,
    `drop table ${hour}`,
    `alter table ${staged} rename to ${hour}`,
    `alter index ${staged}_pkey rename to ${hour}_pkey`,
    `alter index ${staged}_minute_idx rename to ${hour}_minute_idx`,
    `alter table ${day} attach partition ${hour}
             for values from ('${from.toISOString()}') to ('${to.toISOString()}')`,
  ];
}

/** The staged name of an hour partition's replacement. */
export const stagedName = (hourPartition: string): string => `${hourPartition}_n`;
