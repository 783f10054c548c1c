// Retention tiers of the authoritative counts: minute rows live days, hour rows months, day rows
// years, each tier in tables partitioned by time so that expiry drops a partition. Pure (no I/O, no
// Node APIs): the batch layer, the workflows and the serving layer share these rules.
import { DAY_MS, type Granularity } from './time.js';

/** How each tier's partitions are cut. */
export type PartitionUnit = 'day' | 'month' | 'year';

export interface Tier {
  granularity: Granularity;
  /** The tables of the tier (per ad, per advertiser), partitioned by `timeColumn`. */
  tables: readonly string[];
  timeColumn: 'minute' | 'hour' | 'day';
  unit: PartitionUnit;
  /** Rows are kept at least this many days; a partition goes once all of it is older. */
  retentionDays: number;
  /** Partitions created ahead of time, counting the current one. */
  ahead: number;
}

export interface RetentionPolicy {
  minuteDays: number;
  hourDays: number;
  dayYears: number;
}

/** The tier definitions of the production tables; tests pass their own table names. */
export function tiersOf(policy: RetentionPolicy, tableSuffix = ''): Record<Granularity, Tier> {
  return {
    minute: {
      granularity: 'minute',
      tables: ['click_counts_minute', 'advertiser_counts_minute'].map((t) => t + tableSuffix),
      timeColumn: 'minute',
      unit: 'day',
      retentionDays: policy.minuteDays,
      ahead: 3,
    },
    hour: {
      granularity: 'hour',
      tables: ['click_counts_hour', 'advertiser_counts_hour'].map((t) => t + tableSuffix),
      timeColumn: 'hour',
      unit: 'month',
      retentionDays: policy.hourDays,
      ahead: 2,
    },
    day: {
      granularity: 'day',
      tables: ['click_counts_day', 'advertiser_counts_day'].map((t) => t + tableSuffix),
      timeColumn: 'day',
      unit: 'year',
      retentionDays: policy.dayYears * 366,
      ahead: 2,
    },
  };
}

/** Start of the partition holding `ts` (UTC). */
export function partitionStart(ts: number, unit: PartitionUnit): number {
  const d = new Date(ts);
  if (unit === 'day') return Math.floor(ts / DAY_MS) * DAY_MS;
  if (unit === 'month') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
  return Date.UTC(d.getUTCFullYear(), 0, 1);
}

/** Start of the partition after the one starting at `start`. */
export function nextPartitionStart(start: number, unit: PartitionUnit): number {
  const d = new Date(start);
  if (unit === 'day') return start + DAY_MS;
  if (unit === 'month') return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return Date.UTC(d.getUTCFullYear() + 1, 0, 1);
}

/** `click_counts_minute_p20261201`, `click_counts_hour_p202612`, `click_counts_day_p2026`. */
export function partitionName(table: string, start: number, unit: PartitionUnit): string {
  const iso = new Date(start).toISOString();
  const stamp =
    unit === 'day'
      ? iso.slice(0, 10).replaceAll('-', '')
      : unit === 'month'
        ? iso.slice(0, 7).replace('-', '')
        : iso.slice(0, 4);
  return `${table}_p${stamp}`;
}

/** The oldest instant a tier still promises at `now`: rows before it may be gone. */
export const tierHorizon = (tier: Pick<Tier, 'retentionDays'>, now: number): number =>
  now - tier.retentionDays * DAY_MS;

/** Partition starts the tier should have at `now`: from the one holding the horizon to `ahead` past now's. */
export function wantedPartitions(tier: Tier, now: number): number[] {
  let last = partitionStart(now, tier.unit);
  for (let i = 1; i < tier.ahead; i++) last = nextPartitionStart(last, tier.unit);
  const starts: number[] = [];
  for (
    let s = partitionStart(tierHorizon(tier, now), tier.unit);
    s <= last;
    s = nextPartitionStart(s, tier.unit)
  )
    starts.push(s);
  return starts;
}

/** A partition [start, next) can be dropped at `now` once all of it is older than the tier's horizon. */
export const partitionExpired = (tier: Tier, start: number, now: number): boolean =>
  nextPartitionStart(start, tier.unit) <= tierHorizon(tier, now);
