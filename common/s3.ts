// The S3 client for any S3-compatible store (the local gateway, MinIO, AWS S3).
import { CreateBucketCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { config } from './config.js';

export function createS3(): S3Client {
  return new S3Client({
    endpoint: config.S3_ENDPOINT,
    region: config.S3_REGION,
    forcePathStyle: true,
    credentials: { accessKeyId: config.S3_ACCESS_KEY_ID, secretAccessKey: config.S3_SECRET_ACCESS_KEY },
    // A hung store (no answer, socket open) fails the request instead of holding it forever; the SDK
    // retries it and the caller keeps its data (the archiver's buffers) for the next try.
    requestHandler: { connectionTimeout: 3000, requestTimeout: 30_000 },
  });
}

export async function ensureBucket(s3: S3Client, bucket: string): Promise<void> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } catch {
    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }
}
