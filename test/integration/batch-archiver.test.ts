// Archiver against real Kafka, S3 and PostgreSQL: every event produced ends up in exactly the
// Parquet objects of its event hour, offsets are committed, watermarks pass the archived hours.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { createS3, ensureBucket } from '../../common/s3.js';
import { HOUR_MS, hourOf } from '../../common/time.js';
import { Archiver } from '../../batch-layer/archiver.js';
import { clickKey, encodeClickEvent, type ClickEvent } from '../../common/click-event.js';
import { clicksTopicSpec, ensureTopics } from '../../common/kafka.js';
import { generateHistory } from '../../tools/history.js';
import { rawHourPrefix } from '../../batch-layer/layout.js';
import { duckConnect, sqlFileList } from '../../batch-layer/parquet.js';
import { deleteObjects, downloadObject, listObjects } from '../../batch-layer/storage.js';
import { archiveHistory, isolation, waitFor } from './batch-helpers.js';
import { sleep } from '../../common/wait.js';

describe('archiver', () => {
  const iso = isolation();
  const pool = createPool(3);
  const s3 = createS3();
  const kafka = createKafka('batch-archiver-test');
  const history = generateHistory({
    from: iso.hour0,
    hours: 2,
    impressions: 3000,
    adBase: iso.adBase,
    ads: 30,
    seed: 11,
  });
  let archiver: Archiver;
  let dir: string;

  beforeAll(async () => {
    await migrate(pool);
    await ensureBucket(s3, config.S3_BUCKET);
    dir = await mkdtemp(join(tmpdir(), 'archiver-test-'));
    archiver = await archiveHistory({
      kafka,
      s3,
      pool,
      topic: iso.topic,
      prefix: iso.prefix,
      groupId: iso.groupId,
      history,
      lastHourEnd: iso.hour0 + 2 * HOUR_MS,
    });
  });

  afterAll(async () => {
    await archiver?.stop();
    const keys = (await listObjects(s3, config.S3_BUCKET, iso.prefix)).map((o) => o.key);
    await deleteObjects(s3, config.S3_BUCKET, keys);
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [iso.topic] }).catch(() => undefined);
    await admin.disconnect();
    await pool.query('delete from archive_watermarks where topic = $1', [iso.topic]);
    await pool.end();
    s3.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every event, once per Kafka message, into Parquet under its event hour, read back equal', async () => {
    const objects = await listObjects(s3, config.S3_BUCKET, `${iso.prefix}raw/clicks/`);
    expect(objects.length).toBeGreaterThan(8); // several flushes per partition
    const conn = await duckConnect();
    const got: string[] = [];
    for (const o of objects) {
      expect(o.key).toMatch(/raw\/clicks\/date=\d{4}-\d{2}-\d{2}\/hour=\d{2}\/p[0-3]-\d+-\d+\.parquet$/);
      const path = join(dir, o.key.replaceAll('/', '_'));
      await downloadObject(s3, config.S3_BUCKET, o, path);
      const rows = (
        await conn.runAndReadAll(
          `select event_id, ad_id::varchar as ad_id, advertiser_id::varchar as advertiser_id, ts, status, salt,
                  kafka_partition, kafka_offset from read_parquet(${sqlFileList([path])})`,
        )
      ).getRowObjectsJS();
      for (const r of rows) {
        // The object sits under the hour of each of its events.
        expect(o.key.startsWith(rawHourPrefix(iso.prefix, hourOf(Number(r.ts))))).toBe(true);
        got.push(`${r.event_id}|${r.ad_id}|${r.advertiser_id}|${r.ts}|${r.status}|${r.salt}`);
      }
    }
    conn.closeSync();
    const want = history.events.map(
      (e) => `${e.eventId}|${e.adId}|${e.advertiserId}|${e.ts}|${e.status}|${e.salt}`,
    );
    expect(got.sort()).toEqual(want.sort());
  });

  it('commits offsets to the end of every partition and records the watermarks', async () => {
    const admin = kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(iso.topic);
    const committed = await admin.fetchOffsets({ groupId: iso.groupId, topics: [iso.topic] });
    await admin.disconnect();
    const byPartition = new Map(committed[0]!.partitions.map((p) => [p.partition, p.offset]));
    for (const e of ends) expect(byPartition.get(e.partition)).toBe(e.high);
    const { rows } = await pool.query<{ partition: number; watermark: Date }>(
      'select partition, watermark from archive_watermarks where topic = $1 order by partition',
      [iso.topic],
    );
    expect(rows.map((r) => r.partition)).toEqual([0, 1, 2, 3]);
    for (const r of rows) expect(r.watermark.getTime()).toBeGreaterThan(Date.now() - 60_000);
  });
});

describe('archiver and a message it cannot decode', () => {
  const iso = isolation();
  const pool = createPool(2);
  const s3 = createS3();
  const kafka = createKafka('batch-archiver-undecodable-test');
  let archiver: Archiver | undefined;

  afterAll(async () => {
    await archiver?.stop();
    const keys = (await listObjects(s3, config.S3_BUCKET, iso.prefix)).map((o) => o.key);
    await deleteObjects(s3, config.S3_BUCKET, keys);
    const admin = kafka.admin();
    await admin.connect();
    await admin.deleteTopics({ topics: [iso.topic] }).catch(() => undefined);
    await admin.disconnect();
    await pool.query('delete from archive_watermarks where topic = $1', [iso.topic]);
    await pool.end();
    s3.destroy();
  });

  it('archives JSON and binary events alike, stops at an undecodable message and says so, never commits past it', async () => {
    await migrate(pool);
    await ensureBucket(s3, config.S3_BUCKET);
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [clicksTopicSpec({ topic: iso.topic, partitions: 1 })]);
    const event = (i: number): ClickEvent => ({
      v: 1,
      eventId: randomUUID(),
      adId: String(iso.adBase + BigInt(i % 3)),
      advertiserId: '7',
      ts: iso.hour0 + i * 1000,
      status: 'valid',
      salt: i % 8,
    });
    const events = Array.from({ length: 30 }, (_, i) => event(i));
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    // Offsets 0–9 in the old JSON form, 10–19 binary, 20 no click event at all, 21–30 binary.
    await producer.send({
      topic: iso.topic,
      acks: -1,
      messages: [
        ...events
          .slice(0, 10)
          .map((e) => ({ key: clickKey(e.adId, e.salt), value: encodeClickEvent(e, 'json') })),
        ...events.slice(10, 20).map((e) => ({ key: clickKey(e.adId, e.salt), value: encodeClickEvent(e) })),
        { key: 'x', value: Buffer.from([0x09, 0xff, 0x00, 0x01]) },
        ...events.slice(20).map((e) => ({ key: clickKey(e.adId, e.salt), value: encodeClickEvent(e) })),
      ],
    });
    await producer.disconnect();
    const logs: string[] = [];
    archiver = new Archiver({
      kafka,
      s3,
      pool,
      bucket: config.S3_BUCKET,
      prefix: iso.prefix,
      topic: iso.topic,
      groupId: iso.groupId,
      flushEvents: 1000,
      flushMs: 500,
      graceMs: 1000,
      workDir: join(tmpdir(), `archiver-${iso.groupId}`),
      log: (m) => logs.push(m),
    });
    await archiver.start();
    await waitFor('the 20 events before the bad message archived', async () => archiver!.stats.events >= 20);
    const committed = async () =>
      (await admin.fetchOffsets({ groupId: iso.groupId, topics: [iso.topic] }))[0]!.partitions[0]!.offset;
    await waitFor('offset 20 committed', async () => Number(await committed()) >= 20);
    await sleep(3000); // time enough to go on, if it did
    expect(await committed()).toBe('20');
    expect(archiver.stats.events).toBe(20);
    expect(logs.join('\n')).toMatch(/partition 0 offset 20: cannot decode/);
    await admin.disconnect();

    const conn = await duckConnect();
    const dir = await mkdtemp(join(tmpdir(), 'archiver-undecodable-'));
    const ids: string[] = [];
    for (const o of await listObjects(s3, config.S3_BUCKET, `${iso.prefix}raw/clicks/`)) {
      const path = join(dir, o.key.replaceAll('/', '_'));
      await downloadObject(s3, config.S3_BUCKET, o, path);
      const rows = (
        await conn.runAndReadAll(`select event_id from read_parquet(${sqlFileList([path])})`)
      ).getRowObjectsJS();
      ids.push(...rows.map((r) => String(r.event_id)));
    }
    conn.closeSync();
    await rm(dir, { recursive: true, force: true });
    expect(ids.sort()).toEqual(
      events
        .slice(0, 20)
        .map((e) => e.eventId)
        .sort(),
    );
  });
});
