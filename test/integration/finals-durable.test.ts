// Final counts can be neither doubled nor wiped (issue 24; docs/completeness.md), against the real
// Kafka, S3, PostgreSQL and Temporal with the worker as a child process (as `npm run worker` runs it):
//   1. a host's spool drains a day late with clicks of hours A and B; impressions it clicked in B were
//      clicked again in C on another host (C counted them). The late path must finalize A, B and C
//      again: each impression counted once, in B. (Before: compacting A rebuilt B's seen index first,
//      so B's recompaction found nothing new, C was never finalized again: counted twice.)
//      The changes are served as adjustments, to the admin and to the advertiser.
//   2. raw files past the raw cutoff are gone (retention): a backfill of that hour is refused (the
//      workflow fails naming the cutoff) and the finals are kept; the API answers 409 naming the
//      cutoff. (Before: the backfill recounted nothing and wrote 0, revision 2.)
//   3. an hour just inside the raw cutoff is recounted against the seen index retention kept of an
//      hour past it. (Before: with no raw files the index was not read, the impression counted twice.)
// One private topic, archiver group, S3 prefix, task queue and far-past hours per run.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import type { Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiApp, listen } from '../../apps/api.js';
import { Archiver } from '../../batch-layer/archiver.js';
import { expireRawFiles } from '../../batch-layer/retention.js';
import { deleteObjects, listObjects } from '../../batch-layer/storage.js';
import { clickKey, encodeClickEvent, saltOf, type ClickEvent } from '../../common/click-event.js';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { createS3, ensureBucket } from '../../common/s3.js';
import { createTemporalClient } from '../../common/temporal.js';
import { DAY_MS, HOUR_MS, MINUTE_MS, hourIso, hourPartition } from '../../common/time.js';
import { compactHourId } from '../../common/workflow-ids.js';
import { PostgresSpeedStore } from '../../speed-layer/postgres-speed-store.js';
import { minuteRows, waitFor } from './batch-helpers.js';
import { clickTopic, createAdvertiserWithAds, type CatalogueFixture } from '../support/click.js';

const ROOT = resolve(import.meta.dirname, '..', '..');

describe('finals are never doubled nor wiped', () => {
  const run = randomUUID().slice(0, 8);
  const topic = `finals-${run}`;
  const groupId = `finals-archiver-${run}`;
  const prefix = `finals-${run}/`;
  const taskQueue = `finals-${run}`;
  // Far-past hours of their own: base (late data), base + 200 h (raw cutoff).
  const base = Date.UTC(1995, 0, 1) + Math.floor(Math.random() * 5 * 365 * 24) * HOUR_MS;
  const pool = createPool(4);
  const s3 = createS3();
  const kafka = createKafka(`finals-${run}`);
  let topicIo: Awaited<ReturnType<typeof clickTopic>>;
  let archiver: Archiver;
  let producer: Producer;
  let client: Client;
  let worker: ChildProcess;
  let cat: CatalogueFixture;
  const workerLog: string[] = [];

  beforeAll(async () => {
    await migrate(pool);
    await ensureBucket(s3, config.S3_BUCKET);
    topicIo = await clickTopic(kafka, topic, 2);
    cat = await createAdvertiserWithAds(pool, 2, `finals-${run}`);
    archiver = new Archiver({
      kafka,
      s3,
      pool,
      bucket: config.S3_BUCKET,
      prefix,
      topic,
      groupId,
      flushEvents: 1000,
      flushMs: 1000,
      graceMs: 1000,
      workDir: resolve('/tmp', `archiver-${groupId}`),
    });
    await archiver.start();
    producer = kafka.producer({ idempotent: true });
    await producer.connect();
    client = await createTemporalClient();
    worker = spawn(process.execPath, ['--import', 'tsx', 'apps/worker.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        TEMPORAL_TASK_QUEUE: taskQueue,
        KAFKA_CLICKS_TOPIC: topic,
        ARCHIVER_GROUP_ID: groupId,
        BATCH_S3_PREFIX: prefix,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((ok, fail) => {
      worker.stdout!.on('data', (b: Buffer) => {
        workerLog.push(b.toString());
        if (b.toString().includes('[worker] polling task queue')) ok();
      });
      worker.stderr!.on('data', (b: Buffer) => workerLog.push(b.toString()));
      worker.once('exit', (code) => fail(new Error(`worker exited (${code}):\n${workerLog.join('')}`)));
    });
  }, 180_000);

  afterAll(async () => {
    worker?.kill('SIGKILL');
    await producer?.disconnect();
    await archiver?.stop();
    await client?.connection.close();
    const keys = (await listObjects(s3, config.S3_BUCKET, prefix)).map((o) => o.key);
    await deleteObjects(s3, config.S3_BUCKET, keys);
    await pool.query('delete from raw_files where key like $1', [`${prefix}%`]);
    await pool.query('delete from raw_expiry where prefix = $1', [prefix]);
    await pool.query('delete from archive_watermarks where topic = $1', [topic]);
    await topicIo?.drop();
    await pool.end();
    s3.destroy();
  });

  const event = (adId: string, ts: number, eventId = randomUUID()): ClickEvent => ({
    v: 1,
    eventId,
    adId,
    advertiserId: cat.advertiserId,
    ts,
    status: 'valid',
    salt: saltOf(eventId, config.ADCLICK_KEY_SALTS),
  });
  /** Sends to Kafka (a spool drained late sends its old clicks just so) and waits until archived. */
  async function sendArchived(events: ClickEvent[]): Promise<void> {
    const before = archiver.stats.events;
    await producer.send({
      topic,
      acks: -1,
      messages: events.map((e) => ({ key: clickKey(e.adId, e.salt), value: encodeClickEvent(e) })),
    });
    await waitFor('archived', async () => archiver.stats.events >= before + events.length, 60_000);
  }
  const compact = (hour: number) =>
    client.workflow.execute('compactHour', {
      taskQueue,
      workflowId: compactHourId(hour),
      args: [{ hour: hourIso(hour), watermarkPollSeconds: 1, maxWatermarkWaitMinutes: 5 }],
    }) as Promise<{ validClicks: number; revision: number }>;
  const adIds = (): string[] => cat.ads.map((a) => a.adId);
  const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);
  async function finals(from: number, to: number): Promise<Array<[string, number, number]>> {
    const { rows } = await pool.query<{ hour: Date; revision: number; valid_clicks: string }>(
      'select hour, revision, valid_clicks from finalized_hours where hour >= $1 and hour < $2 order by hour',
      [new Date(from), new Date(to)],
    );
    return rows.map((r) => [hourIso(r.hour.getTime()), r.revision, Number(r.valid_clicks)]);
  }

  it('late clicks of two hours on a host whose impressions were clicked again later: each counted once, the later hour finalized again, adjustments served', async () => {
    const [A, B, C] = [base, base + HOUR_MS, base + 2 * HOUR_MS];
    const [ad1, ad2] = [cat.ads[0]!.adId, cat.ads[1]!.adId];
    // Host X clicked J (hour A) and I1..I4 (hour B) but was cut off from Kafka and died with them in
    // its spool; host Y clicked I1..I4 again in hour C.
    const moved = Array.from({ length: 4 }, () => randomUUID());
    await sendArchived(moved.map((id, i) => event(i % 2 ? ad2 : ad1, C + (10 + i) * MINUTE_MS, id)));
    for (const h of [A, B, C]) await compact(h);
    expect(await finals(A, C + HOUR_MS)).toEqual([
      [hourIso(A), 1, 0],
      [hourIso(B), 1, 0],
      [hourIso(C), 1, 4],
    ]);

    // X is back: its spool drains, clicks of A and B land in their (finalized) hours' folders.
    await sendArchived([
      event(ad1, A + 30 * MINUTE_MS),
      ...moved.map((id, i) => event(i % 2 ? ad2 : ad1, B + (5 + i) * MINUTE_MS, id)),
    ]);
    const late = (await client.workflow.execute('finalizeLateHours', {
      taskQueue,
      workflowId: `finalize-late-${run}`,
      args: [{ from: hourIso(A), to: hourIso(C + HOUR_MS) }],
    })) as { hours: Array<{ hour: string }>; failed: unknown[] };
    expect(late.failed ?? []).toEqual([]);
    // 5 impressions, 5 final clicks: J in A, I1..I4 in B (their first click), none left in C.
    expect(await finals(A, C + HOUR_MS)).toEqual([
      [hourIso(A), 2, 1],
      [hourIso(B), 2, 4],
      [hourIso(C), 2, 0],
    ]);
    expect(total(await minuteRows(pool, adIds(), A, C + HOUR_MS))).toBe(5);
    expect(total(await minuteRows(pool, adIds(), C, C + HOUR_MS))).toBe(0);
    // Nothing left: the next run changes nothing.
    const again = (await client.workflow.execute('finalizeLateHours', {
      taskQueue,
      workflowId: `finalize-late-${run}-again`,
      args: [{ from: hourIso(A), to: hourIso(C + HOUR_MS) }],
    })) as { hours: unknown[] };
    expect(again.hours).toEqual([]);

    // What revision 2 changed after the finals were served: per ad and for the advertiser.
    const api = await listen(
      createApiApp({ pool, speedStore: new PostgresSpeedStore(pool) }),
      0,
      '127.0.0.1',
    );
    try {
      const get = async (path: string, key: string) =>
        (await (
          await fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${key}` } })
        ).json()) as {
          adjustments: Array<{ hour: string; revision: number; adId?: string; delta: number }>;
        };
      const range = `from=${hourIso(A)}&to=${hourIso(C + HOUR_MS)}`;
      const mine = await get(`/v1/advertisers/me/adjustments?${range}`, cat.apiKey);
      const rows = mine.adjustments.map((a) => [a.hour, a.revision, a.adId ?? 'advertiser', a.delta]);
      expect(rows).toEqual([
        [hourIso(A), 2, 'advertiser', 1],
        [hourIso(A), 2, ad1, 1],
        [hourIso(B), 2, 'advertiser', 4],
        ...[
          [hourIso(B), 2, ad1, 2],
          [hourIso(B), 2, ad2, 2],
        ].sort((x, y) => (String(x[2]) < String(y[2]) ? -1 : 1)),
        [hourIso(C), 2, 'advertiser', -4],
        ...[
          [hourIso(C), 2, ad1, -2],
          [hourIso(C), 2, ad2, -2],
        ].sort((x, y) => (String(x[2]) < String(y[2]) ? -1 : 1)),
      ]);
      const admin = await get(
        `/v1/admin/adjustments?${range}&advertiserId=${cat.advertiserId}`,
        config.ADCLICK_ADMIN_KEY,
      );
      expect(admin.adjustments).toEqual(mine.adjustments);
    } finally {
      api.server.closeAllConnections();
      api.server.close();
    }
  }, 180_000);

  it('a backfill of an hour past the raw cutoff is refused and its finals are kept; the API answers 409 naming the cutoff', async () => {
    const hour = base + 200 * HOUR_MS;
    await sendArchived([
      event(cat.ads[0]!.adId, hour + 5 * MINUTE_MS),
      event(cat.ads[1]!.adId, hour + 6 * MINUTE_MS),
    ]);
    expect((await compact(hour)).validClicks).toBe(2);
    // Retention, 31 days on, on this prefix: the hour's raw files are gone.
    const retention = await expireRawFiles(
      { pool, s3, bucket: config.S3_BUCKET, prefix },
      hour + 31 * DAY_MS,
      30 * 24,
      24,
    );
    expect(retention.rawObjects).toBeGreaterThan(0);
    expect(await listObjects(s3, config.S3_BUCKET, `${prefix}raw/`)).toEqual([]);

    const backfill = client.workflow.execute('backfill', {
      taskQueue,
      workflowId: `backfill-${run}`,
      args: [{ from: hourIso(hour), to: hourIso(hour + HOUR_MS) }],
    });
    await expect(backfill).rejects.toThrow();
    const child = await client.workflow.getHandle(compactHourId(hour)).describe();
    expect(child.status.name).toBe('FAILED');
    const { rows } = await pool.query<{ reason: string; kind: string }>(
      'select reason, kind from hour_failures where hour = $1',
      [new Date(hour)],
    );
    expect(rows[0]).toMatchObject({ kind: 'failed', reason: expect.stringMatching(/before the raw cutoff/) });
    // The finals are what they were: revision 1, 2 clicks, rows in place.
    expect(await finals(hour, hour + HOUR_MS)).toEqual([[hourIso(hour), 1, 2]]);
    expect(total(await minuteRows(pool, adIds(), hour, hour + HOUR_MS))).toBe(2);

    // The API refuses such a backfill up front, naming the raw cutoff.
    const now = hour + 40 * DAY_MS;
    const api = await listen(
      createApiApp({ pool, speedStore: new PostgresSpeedStore(pool), now: () => now }),
      0,
      '127.0.0.1',
    );
    try {
      const res = await fetch(`${api.url}/v1/admin/backfills`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` },
        body: JSON.stringify({ from: hourIso(hour), to: hourIso(hour + HOUR_MS) }),
      });
      expect(res.status).toBe(409);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('past_raw_cutoff');
      expect(body.error.message).toContain(
        `the raw cutoff is ${hourIso(now - (now % HOUR_MS) - 30 * DAY_MS)}`,
      );
    } finally {
      api.server.closeAllConnections();
      api.server.close();
    }
  }, 180_000);

  it('an hour just inside the raw cutoff is recounted against the retained seen index of an hour past it', async () => {
    const [E, L] = [base + 300 * HOUR_MS, base + 301 * HOUR_MS];
    const impression = randomUUID();
    await sendArchived([
      event(cat.ads[0]!.adId, E + 50 * MINUTE_MS, impression),
      event(cat.ads[0]!.adId, L + 10 * MINUTE_MS, impression), // its second click: counted in E
    ]);
    for (const h of [E, L]) await compact(h);
    expect(await finals(E, L + HOUR_MS)).toEqual([
      [hourIso(E), 1, 1],
      [hourIso(L), 1, 0],
    ]);
    // Retention 30 days after L: E's raw files go, its seen index stays (L's lookback needs it).
    await expireRawFiles({ pool, s3, bucket: config.S3_BUCKET, prefix }, L + 30 * DAY_MS, 30 * 24, 24);
    expect(await listObjects(s3, config.S3_BUCKET, `${prefix}raw/clicks/${hourPartition(E)}/`)).toEqual([]);
    // L is recounted (a backfill, the daily run): the impression is still E's.
    expect((await compact(L)).validClicks).toBe(0);
    expect(await finals(E, L + HOUR_MS)).toEqual([
      [hourIso(E), 1, 1],
      [hourIso(L), 1, 0],
    ]);
  }, 120_000);
});
