// One smoke test per service, through the project's own client code, against the real local stack.
import { randomUUID } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, describe, expect, it } from 'vitest';
import { config } from '../../common/config.js';
import { createPool } from '../../common/db.js';
import { clicksTopicSpec, createKafka, ensureTopics } from '../../common/kafka.js';
import { createRedis } from '../../common/redis.js';
import { createS3 } from '../../common/s3.js';
import { createTemporalClient } from '../../common/temporal.js';
import { sleep } from '../../common/wait.js';

describe('stack smoke', () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  it('Kafka: a message produced with kafkajs is consumed back', async () => {
    const kafka = createKafka('smoke');
    const topic = `smoke-${randomUUID()}`;
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [clicksTopicSpec({ topic, partitions: 1 })]);
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    const value = `ping ${Date.now()}`;
    await producer.send({ topic, acks: -1, messages: [{ key: 'k', value }] });
    const consumer = kafka.consumer({ groupId: `smoke-${randomUUID()}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = await new Promise<string>((resolve) => {
      void consumer.run({ eachMessage: async ({ message }) => resolve(message.value!.toString()) });
    });
    expect(received).toBe(value);
    await consumer.disconnect();
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] });
    await admin.disconnect();
  });

  it('Temporal: a worker runs a workflow to completion', async () => {
    const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
    const taskQueue = `smoke-${randomUUID()}`;
    const worker = await Worker.create({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      taskQueue,
      workflowsPath: new URL('./fixtures/smoke-workflows.ts', import.meta.url).pathname,
    });
    const client = await createTemporalClient();
    const result = await worker.runUntil(
      client.workflow.execute('smokeGreeting', {
        taskQueue,
        workflowId: `smoke-${randomUUID()}`,
        args: ['stack'],
      }),
    );
    expect(result).toBe('hello, stack');
    await client.connection.close();
    await connection.close();
  });

  it('S3: an object put is read back byte for byte', async () => {
    const s3 = createS3();
    const key = `smoke/${randomUUID()}.txt`;
    const body = `hello ${randomUUID()}`;
    await s3.send(new PutObjectCommand({ Bucket: config.S3_BUCKET, Key: key, Body: body }));
    const got = await s3.send(new GetObjectCommand({ Bucket: config.S3_BUCKET, Key: key }));
    expect(await got.Body!.transformToString()).toBe(body);
    s3.destroy();
  });

  it('PostgreSQL: a parameterized query answers', async () => {
    const pool = createPool(1);
    cleanups.push(() => pool.end());
    const res = await pool.query<{ sum: number }>('select $1::int + $2::int as sum', [40, 2]);
    expect(res.rows[0]!.sum).toBe(42);
  });

  it('Redis: SET NX with a TTL sets once and expires', async () => {
    const redis = createRedis();
    await redis.connect();
    const key = `smoke:${randomUUID()}`;
    expect(await redis.set(key, '1', 'PX', 300, 'NX')).toBe('OK');
    expect(await redis.set(key, '1', 'PX', 300, 'NX')).toBeNull();
    const ttl = await redis.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(300);
    await sleep(400);
    expect(await redis.exists(key)).toBe(0);
    redis.disconnect();
  });
});
