// One hour's objects in the archive bucket: its raw click files and its seen indexes. The bucket,
// the key prefix and the hour are bound once (`hourArchive`), so the compaction's steps talk about
// "this hour's raw files" instead of passing (deps, hourStart) down to the S3 helpers.
import { createHash } from 'node:crypto';
import { basename, join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { hourIso } from '../common/time.js';
import { rawHourPrefix, seenIndexHourPrefix, seenIndexKey } from './layout.js';
import { deleteObjects, downloadObject, listObjects, uploadFile, type S3Object } from './storage.js';

/** Where the archive lives: the bucket and the key prefix inside it ('' in production). */
export interface ArchiveBucket {
  s3: S3Client;
  bucket: string;
  prefix: string;
}

/** Files fetched at once: a single stream leaves the S3 server and the disk mostly idle. */
export const DOWNLOAD_CONCURRENCY = 4;

/** An hour as a path segment: `2026-01-01T13:00:00.000Z` → `2026-01-01T130000.000Z`. */
export const hourSegment = (hourStart: number): string => hourIso(hourStart).replaceAll(':', '');

/**
 * Scratch folder of one hour under one bucket/prefix; stable, so a retried activity reuses downloads.
 */
export function hourScratchDir(workDir: string, where: Omit<ArchiveBucket, 's3'>, hourStart: number): string {
  const ns = createHash('sha1').update(`${where.bucket}/${where.prefix}`).digest('hex').slice(0, 12);
  return join(workDir, ns, hourSegment(hourStart));
}

/** The local paths of `objects` under `dir`, by their base names. */
export const localPaths = (objects: readonly S3Object[], dir: string): string[] =>
  objects.map((o) => join(dir, basename(o.key)));

/** The hour's objects in the archive, and what compaction does with them. */
export interface HourArchive {
  readonly hourStart: number;
  rawFiles(): Promise<S3Object[]>;
  seenIndexes(): Promise<S3Object[]>;
  /** The key of the seen index built from exactly `raw`. */
  seenIndexKeyOf(raw: readonly S3Object[]): string;
  download(object: S3Object, path: string): Promise<void>;
  /** Downloads `objects` into `dir`, a few at once; `onFile` after each. Returns their local paths. */
  downloadAll(objects: readonly S3Object[], dir: string, onFile?: () => void): Promise<string[]>;
  /** Uploads the file at `path` as `key` and deletes the `older` objects other than `key`. */
  replace(key: string, path: string, older: readonly S3Object[]): Promise<void>;
}

export function hourArchive(where: ArchiveBucket, hourStart: number): HourArchive {
  const { s3, bucket, prefix } = where;
  const download = (object: S3Object, path: string): Promise<void> =>
    downloadObject(s3, bucket, object, path);
  return {
    hourStart,
    rawFiles: () => listObjects(s3, bucket, rawHourPrefix(prefix, hourStart)),
    seenIndexes: () => listObjects(s3, bucket, seenIndexHourPrefix(prefix, hourStart)),
    seenIndexKeyOf: (raw) =>
      seenIndexKey(
        prefix,
        hourStart,
        raw.map((o) => o.key),
      ),
    download,
    async downloadAll(objects, dir, onFile) {
      const paths = localPaths(objects, dir);
      let next = 0;
      const worker = async (): Promise<void> => {
        for (let i = next++; i < objects.length; i = next++) {
          await download(objects[i]!, paths[i]!);
          onFile?.();
        }
      };
      await Promise.all(Array.from({ length: Math.min(DOWNLOAD_CONCURRENCY, objects.length) }, worker));
      return paths;
    },
    async replace(key, path, older) {
      await uploadFile(s3, bucket, key, path);
      await deleteObjects(s3, bucket, othersThan(older, key));
    },
  };
}

/** The keys of `objects` other than `key`: the older versions a replacement deletes. */
export const othersThan = (objects: readonly S3Object[], key: string): string[] =>
  objects.map((o) => o.key).filter((k) => k !== key);
