// What the archiver holds per partition between two flushes, and the pure rules over it: which rows
// a flush takes, how a failed flush puts them back, where the partition's watermark stands. No I/O:
// unit-tested in partition-buffer.test.ts. The raw files a flush writes: uploadRawFiles.
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Kafka } from 'kafkajs';
import type pg from 'pg';
import { hourOf } from '../common/time.js';
import { rawFileKey } from './layout.js';
import { writeRawParquet, type RawClickRow } from './parquet.js';
import { uploadFile } from './storage.js';
import { rm } from 'node:fs/promises';

export interface ArchiverOptions {
  kafka: Kafka;
  s3: S3Client;
  pool: pg.Pool;
  bucket: string;
  prefix: string;
  topic: string;
  groupId: string;
  flushEvents: number;
  flushMs: number;
  graceMs: number;
  workDir: string;
  /** Events held over all partitions before fetching pauses (default ARCHIVER_MAX_BUFFERED_EVENTS). */
  maxBufferedEvents?: number;
  fromBeginning?: boolean;
  /** Fetch sizing (KAFKA_CONSUMER_MIN_BYTES / KAFKA_CONSUMER_MAX_WAIT_MS); kafkajs' defaults if unset. */
  fetch?: { minBytes: number; maxWaitTimeInMs: number };
  /** A partition whose committed offset stands still this long with lag is stalled (KAFKA_STALL_AFTER_MS). */
  stallAfterMs?: number;
  log?: (msg: string) => void;
}

export interface PartitionBuffer {
  rows: RawClickRow[];
  minTs?: number;
  openedAt: number;
  lastMessageTime?: number;
  /** Last consumed offset (also of skipped messages) and last committed one. */
  lastOffset?: string;
  committedOffset?: string;
  /** Rows a running flush took out of `rows` (still in memory; put back if the flush fails). */
  uploading: number;
  /** Oldest event time among them: the watermark must not pass it before the upload succeeds. */
  uploadingMinTs?: number;
  /** Serializes flushes of this partition (from eachBatch and from the timer). */
  lock: Promise<void>;
}

export const minDefined = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.min(a, b);

/** The rows of a flush by event hour: one raw file per hour. */
export function rowsByHour(rows: readonly RawClickRow[]): Map<number, RawClickRow[]> {
  const byHour = new Map<number, RawClickRow[]>();
  for (const r of rows) {
    const h = hourOf(r.event.ts);
    let list = byHour.get(h);
    if (!list) byHour.set(h, (list = []));
    list.push(r);
  }
  return byHour;
}

/**
 * Takes the buffer's rows for a flush, synchronously: messages consumed while the flush uploads
 * belong to the next one.
 */
export function takeRows(b: PartitionBuffer): { rows: RawClickRow[]; last?: string; minTs?: number } {
  const taken = { rows: b.rows, last: b.lastOffset, minTs: b.minTs };
  b.rows = [];
  b.minTs = undefined;
  return taken;
}

/** A failed flush's rows go back in front of what came since (the consumer has moved past them). */
export function putBack(b: PartitionBuffer, rows: readonly RawClickRow[]): void {
  b.rows = rows.concat(b.rows);
  for (const r of rows) b.minTs = b.minTs === undefined ? r.event.ts : Math.min(b.minTs, r.event.ts);
}

let fileSeq = 0;

/**
 * Writes the rows as one Parquet file per event hour and uploads each, recording it in raw_files
 * before the offsets are committed. Returns the number of files.
 */
export async function uploadRawFiles(
  opts: Pick<ArchiverOptions, 'workDir' | 'prefix' | 's3' | 'bucket' | 'pool'>,
  partition: number,
  rows: readonly RawClickRow[],
  first: string,
  last: string,
): Promise<number> {
  let files = 0;
  for (const [hour, hourRows] of rowsByHour(rows)) {
    const path = join(opts.workDir, `${process.pid}-${++fileSeq}.parquet`);
    try {
      await writeRawParquet(hourRows, path);
      const key = rawFileKey(opts.prefix, hour, partition, first, last);
      await uploadFile(opts.s3, opts.bucket, key, path);
      // Before the offsets are committed: a file of an hour already finalized is found by the late
      // path (docs/completeness.md) from this row.
      await opts.pool.query(
        'insert into raw_files (hour, key) values ($1, $2) on conflict (hour, key) do nothing',
        [new Date(hour), key],
      );
    } finally {
      await rm(path, { force: true });
    }
    files++;
  }
  return files;
}

/** Whether Kafka offset `a` comes after `b` (non-negative decimal strings, no leading zeros). */
export function offsetAfter(a: string, b: string): boolean {
  return a.length !== b.length ? a.length > b.length : a > b;
}
