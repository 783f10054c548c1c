// Retention of the batch layer: the count tiers' partitions (batch-layer/partitions.ts) and the raw
// Parquet in S3. Raw files (and the seen-ids indexes) of hours older than the raw retention are
// deleted, with their `raw_files` rows; the sweep and the late path already look only inside it.
import type { S3Client } from '@aws-sdk/client-s3';
import type pg from 'pg';
import type { Granularity } from '../common/time.js';
import { HOUR_MS, hourOf } from '../common/time.js';
import type { Tier } from '../common/retention.js';
import { dropExpiredPartitions, ensurePartitions, type PartitionChange } from './partitions.js';
import { rawHourPrefix, seenIndexHourPrefix } from './layout.js';
import { deleteObjects, listObjectsBefore } from './storage.js';
import { rawExpiryCutoff } from './decisions.js';
import { lateHours, neverFinalized, rawCutoffOf } from './late-files.js';

export interface PartitionRetentionResult {
  created: PartitionChange[];
  dropped: PartitionChange[];
}

/** Creates each tier's upcoming partitions, then drops its expired ones. */
export async function applyPartitionRetention(
  pool: pg.Pool,
  tiers: Record<Granularity, Tier>,
  now: number,
): Promise<PartitionRetentionResult> {
  const result: PartitionRetentionResult = { created: [], dropped: [] };
  for (const tier of Object.values(tiers)) {
    result.created.push(...(await ensurePartitions(pool, tier, now)));
    result.dropped.push(...(await dropExpiredPartitions(pool, tier, now)));
  }
  return result;
}

/** Raw files of an hour still owed a finalization are kept at most this long past the retention. */
export const RAW_HOLD_HOURS = 7 * 24;

export interface RawRetentionResult {
  /** Raw files of hours before this were deleted. */
  before: string;
  rawObjects: number;
  indexObjects: number;
  rawFileRows: number;
}

/**
 * Deletes raw Parquet of hours before `hourOf(now) - retentionHours`, and seen indexes of hours
 * `lookbackHours` before that (the oldest kept hour still dedups against them). The cutoff is held
 * back for an hour still owed a finalization (never finalized, or stale: decisions.ts,
 * `rawExpiryCutoff`), and recorded in `raw_expiry` before anything is deleted: from then on a
 * compaction of an earlier hour is refused.
 */
export async function expireRawFiles(
  deps: { pool: pg.Pool; s3: S3Client; bucket: string; prefix: string },
  now: number,
  retentionHours: number,
  lookbackHours: number,
): Promise<RawRetentionResult> {
  const clock = hourOf(now) - retentionHours * HOUR_MS;
  const previous = await rawCutoffOf(deps.pool, deps.prefix);
  const reach = clock + (lookbackHours + 1) * HOUR_MS;
  const owed = [
    ...(await neverFinalized(deps.pool, deps.prefix, clock)),
    ...(await lateHours(deps.pool, previous ?? 0, reach, 100_000, lookbackHours, [], deps.prefix)),
  ];
  const cutoff = rawExpiryCutoff({
    now,
    retentionHours,
    lookbackHours,
    hourMs: HOUR_MS,
    owed,
    previous,
    maxHoldHours: RAW_HOLD_HOURS,
  });
  await deps.pool.query(
    `insert into raw_expiry (prefix, raw_before) values ($1, $2)
     on conflict (prefix) do update set raw_before = greatest(raw_expiry.raw_before, excluded.raw_before),
       recorded_at = now()`,
    [deps.prefix, new Date(cutoff)],
  );
  const rawRoot = `${deps.prefix}raw/clicks/`;
  const indexRoot = `${deps.prefix}index/seen/`;
  const raw = await listObjectsBefore(deps.s3, deps.bucket, rawRoot, rawHourPrefix(deps.prefix, cutoff));
  const index = await listObjectsBefore(
    deps.s3,
    deps.bucket,
    indexRoot,
    seenIndexHourPrefix(deps.prefix, cutoff - lookbackHours * HOUR_MS),
  );
  await deleteObjects(
    deps.s3,
    deps.bucket,
    raw.map((o) => o.key),
  );
  await deleteObjects(
    deps.s3,
    deps.bucket,
    index.map((o) => o.key),
  );
  // raw_files rows are per key; only this prefix's keys go.
  const rows = await deps.pool.query('delete from raw_files where hour < $1 and key like $2', [
    new Date(cutoff),
    `${rawRoot.replaceAll('\\', '\\\\').replaceAll('%', '\\%').replaceAll('_', '\\_')}%`,
  ]);
  return {
    before: new Date(cutoff).toISOString(),
    rawObjects: raw.length,
    indexObjects: index.length,
    rawFileRows: rows.rowCount ?? 0,
  };
}
