// Which hours need the batch layer again. The late path: finalized hours that got raw files after
// their last compaction listed S3 (a spool replayed after the hour was finalized, a host back after a
// day): finalized again (workflows: finalizeLateHours). The sweep: hours never finalized or whose
// compaction failed (workflows: sweepHours).
import type pg from 'pg';
import { HOUR_MS } from '../common/time.js';
import { staleHours, type RawCutoff } from './decisions.js';

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

/** LIKE pattern of the keys under an S3 prefix. */
const keysUnder = (prefix: string): string =>
  `${prefix.replaceAll('\\', '\\\\').replaceAll('%', '\\%').replaceAll('_', '\\_')}%`;

/** The raw cutoff retention recorded for this S3 prefix (undefined: retention never ran on it). */
export async function rawCutoffOf(db: Queryable, prefix: string): Promise<RawCutoff> {
  const { rows } = await db.query<{ raw_before: Date }>(
    'select raw_before from raw_expiry where prefix = $1',
    [prefix],
  );
  return rows[0]?.raw_before.getTime();
}

/** Raw file keys of the hour under `prefix` the archiver recorded at or before `before`. */
export async function recordedRawKeys(
  db: Queryable,
  hourStart: number,
  prefix: string,
  before: Date,
): Promise<string[]> {
  const { rows } = await db.query<{ key: string }>(
    `select key from raw_files where hour = $1 and key like $2 and uploaded_at <= $3`,
    [new Date(hourStart), keysUnder(`${prefix}raw/`), before],
  );
  return rows.map((r) => r.key);
}

/** Hours with raw files under `prefix` before `before` that were never finalized. */
export async function neverFinalized(pool: pg.Pool, prefix: string, before: number): Promise<number[]> {
  const { rows } = await pool.query<{ hour: Date }>(
    `select distinct r.hour from raw_files r
      where r.hour < $1 and r.key like $2
        and not exists (select 1 from finalized_hours f where f.hour = r.hour)`,
    [new Date(before), keysUnder(`${prefix}raw/`)],
  );
  return rows.map((r) => r.hour.getTime());
}

/**
 * Hours the sweep must (re)start, oldest first, at most `limit`: in [from, to) and not before the
 * first hour with raw data (hours before the system existed have nothing to finalize), either never
 * finalized or whose last compaction failed after their last finalization.
 */
export async function hoursToSweep(
  pool: pg.Pool,
  from: number,
  to: number,
  limit: number,
): Promise<number[]> {
  const { rows } = await pool.query<{ hour: Date }>(
    `with bounds as (
       select greatest($1::timestamptz, coalesce((select min(hour) from raw_files), 'infinity')) as lo,
              $2::timestamptz as hi
     )
     select h.hour from bounds, generate_series(bounds.lo, bounds.hi - interval '1 hour', interval '1 hour') as h(hour)
      left join finalized_hours f on f.hour = h.hour
      left join hour_failures x on x.hour = h.hour
      where f.hour is null or x.failed_at > f.finalized_at
      order by h.hour limit $3`,
    [new Date(from), new Date(to), limit],
  );
  return rows.map((r) => r.hour.getTime());
}

/** Records that an hour's compaction failed for good (cleared by its next finalization). */
export async function recordHourFailure(
  pool: pg.Pool,
  hourStart: number,
  workflowId: string,
  reason: string,
  kind: 'failed' | 'waiting' = 'failed',
): Promise<void> {
  await pool.query(
    `insert into hour_failures (hour, failed_at, workflow_id, reason, kind) values ($1, now(), $2, $3, $4)
     on conflict (hour) do update set failed_at = now(), workflow_id = excluded.workflow_id,
       reason = excluded.reason, kind = excluded.kind`,
    [new Date(hourStart), workflowId, reason.slice(0, 2000), kind],
  );
}

/**
 * The late path's queue (decisions.ts, `staleHours`), read from durable state only: finalized hours in
 * [from, to) any of whose inputs (their own raw files or those of the hours in their lookback) were
 * uploaded after they listed them. At most `limit`, oldest first, failing ones last; `exclude`d
 * hours (already taken up by this run) are left out.
 */
export async function lateHours(
  pool: pg.Pool,
  from: number,
  to: number,
  limit: number,
  lookbackHours: number,
  exclude: readonly number[] = [],
  /** Only raw files under this S3 prefix ('' in production: all). */
  prefix = '',
): Promise<number[]> {
  const [finalized, uploads] = await Promise.all([
    pool.query<{ hour: Date; listed_at: Date | null; failing: boolean }>(
      `select f.hour, f.listed_at, coalesce(x.failed_at > f.finalized_at, false) as failing
         from finalized_hours f left join hour_failures x on x.hour = f.hour
        where f.hour >= $1 and f.hour < $2`,
      [new Date(from), new Date(Math.min(to + lookbackHours * HOUR_MS, Date.UTC(9999, 0)))],
    ),
    pool.query<{ hour: Date; newest: Date }>(
      `select hour, max(uploaded_at) as newest from raw_files where hour >= $1 and hour < $2 and key like $3
        group by hour`,
      [new Date(from - lookbackHours * HOUR_MS), new Date(to), keysUnder(`${prefix}raw/`)],
    ),
  ]);
  return staleHours({
    finalized: finalized.rows.map((r) => ({
      hour: r.hour.getTime(),
      // Finalized before listed_at existed: its inputs are those of that run, when it finalized.
      listedAt: r.listed_at?.getTime() ?? Infinity,
      failing: r.failing,
    })),
    newestUpload: new Map(uploads.rows.map((r) => [r.hour.getTime(), r.newest.getTime()])),
    lookbackHours,
    hourMs: HOUR_MS,
    from,
    to,
    limit,
    exclude: new Set(exclude),
  });
}
