// Thin S3 helpers for the batch layer: list a prefix, download to a local file, upload a file.
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';

export interface S3Object {
  key: string;
  size: number;
  /** Epoch ms, when S3 says. */
  lastModified?: number;
}

export async function listObjects(s3: S3Client, bucket: string, prefix: string): Promise<S3Object[]> {
  const out: S3Object[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? [])
      if (o.Key) out.push({ key: o.Key, size: o.Size ?? 0, lastModified: o.LastModified?.getTime() });
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Downloads unless a local file of the same size is already there (a resumed activity). */
export async function downloadObject(
  s3: S3Client,
  bucket: string,
  object: S3Object,
  path: string,
): Promise<void> {
  const have = await stat(path).catch(() => undefined);
  if (have?.size === object.size) return;
  await mkdir(dirname(path), { recursive: true });
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: object.key }));
  const partial = `${path}.part`;
  await pipeline(res.Body as Readable, createWriteStream(partial));
  await rename(partial, path);
}

export async function uploadFile(s3: S3Client, bucket: string, key: string, path: string): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: await readFile(path) }));
}

export async function deleteObjects(s3: S3Client, bucket: string, keys: readonly string[]): Promise<void> {
  for (let i = 0; i < keys.length; i += 1000) {
    const chunk = keys.slice(i, i + 1000);
    if (chunk.length === 0) continue;
    await s3.send(
      new DeleteObjectsCommand({ Bucket: bucket, Delete: { Objects: chunk.map((Key) => ({ Key })) } }),
    );
  }
}

/**
 * Keys under `prefix` that sort before `before`, in order. Listing is in key order, so it stops at
 * the first page that reaches `before`: a dated layout is walked only up to that date.
 */
export async function listObjectsBefore(
  s3: S3Client,
  bucket: string,
  prefix: string,
  before: string,
): Promise<S3Object[]> {
  const out: S3Object[] = [];
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) {
      if (!o.Key) continue;
      if (o.Key >= before) return out;
      out.push({ key: o.Key, size: o.Size ?? 0 });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}
