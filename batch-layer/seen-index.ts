// The seen index of an hour: its distinct valid impression ids, in Parquet, named after the raw files
// it was built from (layout.ts). The compaction of a later hour reads the indexes of the hours in its
// lookback to skip impressions already counted there; each hour's index depends only on its own raw
// files, so hours can be compacted in any order and still agree.
import { mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { HOUR_MS } from '../common/time.js';
import { countedStatuses, lookbackSource, type RawCutoff } from './decisions.js';
import { hourSegment, type HourArchive } from './hour-archive.js';
import { duckConnect, sqlFileList, sqlString } from './parquet.js';
import type { S3Object } from './storage.js';

/**
 * Seen indexes are random ids: zstd halves them (snappy and lz4 barely shrink them), and its fastest
 * level writes them in two thirds of the default level's time, slightly smaller.
 */
export const SEEN_INDEX_FORMAT = '(format parquet, compression zstd, compression_level 1)';

/** Signed, unexpired clicks of the hour: the candidates for an impression's first click. */
export const validInHour = (files: readonly string[], hourStart: number): string =>
  `select event_id, ts, ad_id, advertiser_id from read_parquet(${sqlFileList(files)})
   where status in (${countedStatuses.map(sqlString).join(', ')}) and ts >= ${hourStart} and ts < ${hourStart + HOUR_MS}`;

/** Writes the distinct valid impression ids of an hour's raw files to a Parquet index. */
async function writeSeenIndex(files: readonly string[], hourStart: number, path: string): Promise<void> {
  const conn = await duckConnect();
  try {
    await conn.run(
      `copy (select distinct event_id from (${validInHour(files, hourStart)}))
       to ${sqlString(path)} ${SEEN_INDEX_FORMAT}`,
    );
  } finally {
    conn.closeSync();
  }
}

/** The most recently written of an hour's seen indexes (the one retention kept). */
export const newestObject = (objects: readonly S3Object[]): S3Object =>
  objects.reduce((a, b) => ((b.lastModified ?? 0) > (a.lastModified ?? 0) ? b : a));

/** Where the seen index `key` of the hour starting `hourStart` is downloaded to under `dir`. */
export const lookbackIndexPath = (dir: string, hourStart: number, key: string): string =>
  join(dir, 'lookback', `${hourSegment(hourStart)}-${basename(key)}`);

/**
 * The local path of the seen index of an earlier hour (decisions.ts, `lookbackSource`): inside the
 * raw retention, up to date with its raw files (built and uploaded when missing or stale); past the
 * raw cutoff, the index retention kept; undefined when the hour has neither.
 */
export async function lookbackSeenIndex(
  archive: HourArchive,
  dir: string,
  cutoff: RawCutoff,
): Promise<string | undefined> {
  const { hourStart } = archive;
  const raw = await archive.rawFiles();
  const existing = await archive.seenIndexes();
  const source = lookbackSource({
    hourStart,
    cutoff,
    rawFiles: raw.length,
    retainedIndex: existing.length > 0,
  });
  if (source === 'none') return undefined;
  if (source === 'retained-index') {
    const kept = newestObject(existing);
    const path = lookbackIndexPath(dir, hourStart, kept.key);
    await archive.download(kept, path);
    return path;
  }
  const key = archive.seenIndexKeyOf(raw);
  const path = lookbackIndexPath(dir, hourStart, key);
  const current = existing.find((o) => o.key === key);
  if (current) {
    await archive.download(current, path);
    return path;
  }
  const rawDir = join(dir, 'lookback-raw', hourSegment(hourStart));
  const files = await archive.downloadAll(raw, rawDir);
  await mkdir(join(dir, 'lookback'), { recursive: true });
  await writeSeenIndex(files, hourStart, path);
  await archive.replace(key, path, existing);
  await rm(rawDir, { recursive: true, force: true });
  return path;
}

/**
 * Publishes the hour's seen index under the name of the raw files it covers, replacing older ones.
 * Which later hours must be finalized again does not depend on it: the late path derives them from
 * durable state (decisions.ts, `staleHours`), which no other compaction can consume.
 */
export async function publishSeenIndex(
  archive: HourArchive,
  raw: readonly S3Object[],
  indexPath: string,
): Promise<void> {
  const existing = await archive.seenIndexes();
  await archive.replace(archive.seenIndexKeyOf(raw), indexPath, existing);
}
