// Which hours need the batch layer again. The late path: finalized hours that got raw files after
// their last compaction listed S3 (a spool replayed after the hour was finalized, a host back after a
// day): finalized again (workflows: finalizeLateHours). The sweep: hours never finalized or whose
// compaction failed (workflows: sweepHours).
import type pg from 'pg';

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
): Promise<void> {
  await pool.query(
    `insert into hour_failures (hour, failed_at, workflow_id, reason) values ($1, now(), $2, $3)
     on conflict (hour) do update set failed_at = now(), workflow_id = excluded.workflow_id, reason = excluded.reason`,
    [new Date(hourStart), workflowId, reason.slice(0, 2000)],
  );
}

/** Hour starts (epoch ms) in [from, to), oldest first, at most `limit`. */
export async function lateHours(pool: pg.Pool, from: number, to: number, limit: number): Promise<number[]> {
  const { rows } = await pool.query<{ hour: Date }>(
    `select f.hour from finalized_hours f
      where f.hour >= $1 and f.hour < $2
        and exists (select 1 from raw_files r where r.hour = f.hour and r.uploaded_at > f.listed_at)
      order by f.hour limit $3`,
    [new Date(from), new Date(to), limit],
  );
  return rows.map((r) => r.hour.getTime());
}
