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

export interface RawRetentionResult {
  /** Raw files of hours before this were deleted. */
  before: string;
  rawObjects: number;
  indexObjects: number;
  rawFileRows: number;
}

/**
 * Deletes raw Parquet of hours before `hourOf(now) - retentionHours`, and seen indexes of hours
 * `lookbackHours` before that (the oldest kept hour still dedups against them).
 */
export async function expireRawFiles(
  deps: { pool: pg.Pool; s3: S3Client; bucket: string; prefix: string },
  now: number,
  retentionHours: number,
  lookbackHours: number,
): Promise<RawRetentionResult> {
  const cutoff = hourOf(now) - retentionHours * HOUR_MS;
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
