// applyRetention: the retention tiers (partitions ahead, expired partitions dropped, raw Parquet past
// the raw retention deleted).
import { upsertMemo } from '@temporalio/workflow';
import type { PartitionRetentionResult, RawRetentionResult } from '../activities/index.js';
import { retention } from './support.js';

export interface RetentionInput {
  /** The clock retention applies at (ISO); default: now. For tests on tables of their own. */
  now?: string;
}

export interface RetentionResult {
  partitions: PartitionRetentionResult;
  raw: RawRetentionResult;
}

/**
 * Retention, run by its schedule every hour: each count tier gets its upcoming partitions and loses
 * the ones wholly past its window (a drop, not a delete), then raw Parquet past the raw retention is
 * deleted. Both steps are idempotent; what changed is in the memo.
 */
export async function applyRetention(input: RetentionInput = {}): Promise<RetentionResult> {
  const partitions = await retention.applyPartitionRetention(input.now);
  upsertMemo({
    created: partitions.created.map((c) => c.partition),
    dropped: partitions.dropped.map((d) => d.partition),
  });
  const raw = await retention.expireRawFiles(input.now);
  upsertMemo({ rawDeletedBefore: raw.before, rawObjects: raw.rawObjects });
  return { partitions, raw };
}
