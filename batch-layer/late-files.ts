// The late path's question: which finalized hours got raw files after their last compaction listed
// S3? Such a file holds clicks the final numbers lack (a spool replayed after the hour was finalized,
// a host back after a day): the hour is finalized again (workflows: finalizeLateHours).
import type pg from 'pg';

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
