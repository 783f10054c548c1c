// The archiver's view of its group's offsets, and the per-partition watermarks it records from them
// (docs/completeness.md). The rules over one partition are pure (`commitLost`, `watermarkInputs`),
// unit-tested in archive-watermarks.test.ts.
import type { Admin } from 'kafkajs';
import type pg from 'pg';
import { minDefined, type PartitionBuffer } from './partition-buffer.js';
import type { PartitionProgress as WatermarkInputs } from './watermark.js';

/** The topic's end offsets and the group's committed ones (-1: nothing committed), by partition. */
export async function groupOffsets(
  admin: Admin,
  topic: string,
  groupId: string,
): Promise<{ end: Map<number, bigint>; committed: Map<number, bigint> }> {
  const [ends, committed] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  return {
    end: new Map(ends.map((e) => [e.partition, BigInt(e.high)])),
    committed: new Map((committed[0]?.partitions ?? []).map((c) => [c.partition, BigInt(c.offset)])),
  };
}

/** A committed offset as a position: none (or -1) is 0. */
export const clampOffset = (offset: bigint | undefined): bigint =>
  offset === undefined || offset < 0n ? 0n : offset;

/**
 * The group's committed offset is behind the commit this process made for the partition (and no
 * upload is running that would commit anyway): the commit was lost and must be made again.
 */
export const commitLost = (b: PartitionBuffer, inKafka: bigint): boolean =>
  b.uploading === 0 && b.committedOffset !== undefined && inKafka < BigInt(b.committedOffset) + 1n;

/** What the partition's watermark rests on: its oldest event still in memory, or caught up. */
export function watermarkInputs(
  b: PartitionBuffer | undefined,
  committed: bigint,
  end: bigint,
): WatermarkInputs {
  const buffered = b !== undefined && b.rows.length + b.uploading > 0;
  return {
    bufferedMinTs: buffered ? minDefined(b.minTs, b.uploadingMinTs) : undefined,
    lastMessageTime: b?.lastMessageTime,
    caughtUp: !buffered && committed >= end,
  };
}

export async function writeWatermark(
  pool: pg.Pool,
  topic: string,
  partition: number,
  wm: number,
): Promise<void> {
  await pool.query(
    `insert into archive_watermarks (topic, partition, watermark, updated_at) values ($1, $2, $3, now())
     on conflict (topic, partition) do update set watermark = excluded.watermark, updated_at = now()`,
    [topic, partition, new Date(wm)],
  );
}
