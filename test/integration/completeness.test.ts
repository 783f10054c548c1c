// Final means complete (docs/completeness.md), against the real Kafka, S3, PostgreSQL, Redis and
// Temporal: an hour is not finalized while a live click process still holds clicks of it; a silent
// one is not waited for, and the late path finalizes the hour again (revision 2) once its clicks come;
// a late click re-finalizes its own hour and, through the cross-hour dedup, the next one; the first
// signed click counts whatever Redis said. One private topic, archiver group, S3 prefix, task queue
// and far-past hours per run; the click services run on a clock shifted into those hours.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApiApp, listen } from '../../apps/api.js';
import { Archiver } from '../../batch-layer/archiver.js';
import { deleteObjects, listObjects } from '../../batch-layer/storage.js';
import {
  clickKey,
  encodeClickEvent,
  saltOf,
  type ClickEvent,
  type ClickStatus,
} from '../../common/click-event.js';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka, growPartitions } from '../../common/kafka.js';
import { createS3, ensureBucket } from '../../common/s3.js';
import { createTemporalClient } from '../../common/temporal.js';
import { HOUR_MS, MINUTE_MS, hourIso, minuteOf } from '../../common/time.js';
import { compactHourId } from '../../common/workflow-ids.js';
import { clickPath, newImpression } from '../../ingest/impression.js';
import { startClickService, type ClickService } from '../../apps/click-service.js';
import { SpeedConsumer } from '../../speed-layer/consumer.js';
import { PostgresSink } from '../../speed-layer/postgres-sink.js';
import { PostgresSpeedStore } from '../../speed-layer/postgres-speed-store.js';
import { minuteRows, waitFor } from './batch-helpers.js';
import {
  clickTopic,
  createAdvertiserWithAds,
  gatedKafka,
  tempSpoolPath,
  type CatalogueFixture,
} from '../support/click.js';
import { sleep } from '../../common/wait.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const SILENCE_MS = 8000;

describe('final means complete', () => {
  const run = randomUUID().slice(0, 8);
  const topic = `completeness-${run}`;
  const groupId = `completeness-archiver-${run}`;
  const prefix = `completeness-${run}/`;
  const taskQueue = `completeness-${run}`;
  // Far-past hours of their own: base (late click), base + 100 h (live holder), base + 200 h (silent).
  const base = Date.UTC(2002, 0, 1) + Math.floor(Math.random() * 5 * 365 * 24) * HOUR_MS;
  const pool = createPool(4);
  const s3 = createS3();
  // New partitions are seen within 2 s (not the default 30 s), so the growth test stays short.
  const kafka = createKafka(`completeness-${run}`, { metadataMaxAgeMs: 2000 });
  let topicIo: Awaited<ReturnType<typeof clickTopic>>;
  let archiver: Archiver;
  let speed: SpeedConsumer;
  let client: Client;
  let worker: ChildProcess;
  let cat: CatalogueFixture;
  const workerLog: string[] = [];
  const services: ClickService[] = [];

  beforeAll(async () => {
    await migrate(pool);
    await ensureBucket(s3, config.S3_BUCKET);
    topicIo = await clickTopic(kafka, topic);
    cat = await createAdvertiserWithAds(pool, 3, `completeness-${run}`);
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
    // The speed layer too (PostgreSQL store), so the admin view can show both layers' counts.
    speed = new SpeedConsumer({
      kafka,
      topic,
      groupId: `completeness-speed-${run}`,
      sink: new PostgresSink(pool, `completeness-speed-${run}`, topic),
      storeName: 'postgres',
      openMinutes: 5,
      flushIntervalMs: 250,
      log: () => undefined,
    });
    await speed.start();
    client = await createTemporalClient();
    worker = spawn(process.execPath, ['--import', 'tsx', 'apps/worker.ts'], {
      cwd: ROOT,
      env: {
        ...process.env,
        TEMPORAL_TASK_QUEUE: taskQueue,
        KAFKA_CLICKS_TOPIC: topic,
        ARCHIVER_GROUP_ID: groupId,
        BATCH_S3_PREFIX: prefix,
        SPEED_STORE: 'postgres',
        FINALIZE_SILENCE_BOUND_MS: String(SILENCE_MS),
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

  // Each test's click processes live on a clock of their own hour: they must not outlive the test,
  // or their reports would hold the next test's (later) hour back.
  afterEach(async () => {
    for (const s of services.splice(0)) await s.close().catch(() => undefined);
  });

  afterAll(async () => {
    worker?.kill('SIGKILL');
    await archiver?.stop();
    await speed?.stop();
    await pool.query('delete from speed_offsets where group_id = $1', [`completeness-speed-${run}`]);
    await client?.connection.close();
    const keys = (await listObjects(s3, config.S3_BUCKET, prefix)).map((o) => o.key);
    await deleteObjects(s3, config.S3_BUCKET, keys);
    await pool.query('delete from click_process_reports where topic = $1', [topic]);
    await pool.query('delete from archive_watermarks where topic = $1', [topic]);
    await topicIo?.drop();
    await pool.end();
    s3.destroy();
  });

  /** A click service on the test topic whose clock reads `clockAt` now; gated Kafka when asked. */
  async function clickService(clockAt: number, opts: { gated?: boolean; spoolPath?: string } = {}) {
    const gate = opts.gated ? gatedKafka(`completeness-gated-${run}`) : undefined;
    const offset = clockAt - Date.now();
    const service = await startClickService({
      port: 0,
      topic,
      kafka: gate?.kafka ?? kafka,
      pool,
      spoolPath: opts.spoolPath ?? tempSpoolPath(),
      clockOffsetMs: offset,
      progressReportMs: 500,
      deadlineMs: 300,
      log: () => undefined,
    });
    services.push(service);
    const clock = (): number => Date.now() + offset;
    return { service, gate, clock };
  }

  /** `n` first clicks through `service` (each a new impression), round-robin over the ads. */
  async function clicks(service: ClickService, clock: () => number, n: number): Promise<number> {
    for (let i = 0; i < n; i++) {
      const ad = cat.ads[i % cat.ads.length]!;
      const imp = newImpression(config.ADCLICK_SIGNING_SECRET, ad.adId, 3600, clock());
      const r = await fetch(service.url + clickPath(imp), { redirect: 'manual' });
      expect(r.status).toBe(302);
    }
    return n;
  }

  const adIds = (): string[] => cat.ads.map((a) => a.adId);
  const total = (m: Map<string, number>): number => [...m.values()].reduce((a, b) => a + b, 0);

  function startCompaction(hour: number) {
    return client.workflow.start('compactHour', {
      taskQueue,
      workflowId: compactHourId(hour),
      args: [{ hour: hourIso(hour), watermarkPollSeconds: 1, maxWatermarkWaitMinutes: 5 }],
    });
  }

  async function finalizedRevision(hour: number): Promise<number | undefined> {
    const { rows } = await pool.query<{ revision: number }>(
      'select revision from finalized_hours where hour = $1',
      [new Date(hour)],
    );
    return rows[0]?.revision;
  }

  const finalizeLate = (from: number, to: number) =>
    client.workflow.execute('finalizeLateHours', {
      taskQueue,
      workflowId: `finalize-late-${run}-${from}-${randomUUID().slice(0, 4)}`,
      args: [{ from: hourIso(from), to: hourIso(to) }],
    });

  it('an hour is not final while a live click process still holds clicks of it in its spool', async () => {
    const hour = base + 100 * HOUR_MS;
    const end = hour + HOUR_MS;
    const a = await clickService(end - 20_000);
    const b = await clickService(end - 20_000, { gated: true });
    b.gate!.cut();
    const sent = (await clicks(a.service, a.clock, 12)) + (await clicks(b.service, b.clock, 9));
    expect(b.service.clickLog.spoolDepth).toBeGreaterThan(0);
    // Past the hour's end and the report margin on the click clock.
    await waitFor('the click clock to pass the hour', async () => a.clock() > end + 6000, 60_000);
    const handle = await startCompaction(hour);
    // B keeps reporting (it is alive), so the hour waits however long B's outage lasts.
    await sleep(12_000);
    const waiting = await handle.describe();
    expect(waiting.status.name).toBe('RUNNING');
    expect(String(waiting.memo?.waitingFor)).toMatch(/click process\(es\) still holding/);
    expect(await finalizedRevision(hour)).toBeUndefined();

    b.gate!.restore();
    await b.service.clickLog.whenDrained();
    const result = (await handle.result()) as { revision: number; validClicks: number };
    expect(result.revision).toBe(1);
    const got = await minuteRows(pool, adIds(), hour, end);
    expect(total(got)).toBe(sent);
    expect(result.validClicks).toBe(sent);
    // Every click went to the hour's last minute, spread evenly over the ads.
    expect([...got.keys()].every((k) => k.endsWith(`|${minuteOf(end - 1)}`))).toBe(true);
    // Caught up, the admin view shows the same count in both layers.
    const api = await listen(
      createApiApp({ pool, speedStore: new PostgresSpeedStore(pool) }),
      0,
      '127.0.0.1',
    );
    try {
      const hours = await waitFor(
        'the speed layer to count the hour',
        async () => {
          const body = (await (
            await fetch(`${api.url}/v1/admin/hours?from=${hourIso(hour)}&to=${hourIso(end)}`, {
              headers: { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` },
            })
          ).json()) as { hours: Array<{ state: string; counts: { batch: number; speed: number } }> };
          return body.hours[0]!.counts.speed === sent && body.hours[0];
        },
        30_000,
      );
      expect(hours).toMatchObject({ state: 'finalized', counts: { batch: sent, speed: sent } });
    } finally {
      api.server.closeAllConnections();
      api.server.close();
    }
  }, 180_000);

  it('a silent process is not waited for; once its spool drains, the late path makes revision 2', async () => {
    const hour = base + 200 * HOUR_MS;
    const end = hour + HOUR_MS;
    const a = await clickService(end - 20_000);
    const spoolPath = tempSpoolPath();
    const b = await clickService(end - 20_000, { gated: true, spoolPath });
    b.gate!.cut();
    const fromA = await clicks(a.service, a.clock, 10);
    const fromB = await clicks(b.service, b.clock, 7);
    await b.service.close(); // its host goes away with 7 redirected clicks in the spool
    await waitFor('the click clock to pass the hour', async () => a.clock() > end + 6000, 60_000);
    const first = (await (await startCompaction(hour)).result()) as { revision: number; validClicks: number };
    expect(first).toMatchObject({ revision: 1, validClicks: fromA });

    // The host comes back: its spool replays into Kafka, the archiver uploads a late file.
    const archivedBefore = archiver.stats.events;
    const back = await clickService(end + 30_000, { spoolPath });
    await back.service.clickLog.whenDrained();
    await waitFor('the late raw file', async () => archiver.stats.events >= archivedBefore + fromB, 60_000);
    const late = (await finalizeLate(hour, end)) as { hours: Array<{ hour: string; revision: number }> };
    expect(late.hours).toEqual([{ hour: hourIso(hour), revision: 2, changed: true }]);
    expect(total(await minuteRows(pool, adIds(), hour, end))).toBe(fromA + fromB);

    // The API says which finalization each final point comes from, and lists the revisions.
    const api = await listen(
      createApiApp({ pool, speedStore: new PostgresSpeedStore(pool) }),
      0,
      '127.0.0.1',
    );
    try {
      const auth = { authorization: `Bearer ${cat.apiKey}` };
      const series = (await (
        await fetch(
          `${api.url}/v1/advertisers/me/clicks?granularity=hour&from=${hourIso(hour)}&to=${hourIso(end)}`,
          {
            headers: auth,
          },
        )
      ).json()) as {
        total: number;
        points: Array<{ final: boolean; revision: number; finalizedAt: string }>;
      };
      expect(series.total).toBe(fromA + fromB);
      expect(series.points).toEqual([
        expect.objectContaining({ final: true, revision: 2, finalizedAt: expect.any(String) }),
      ]);
      const admin = { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` };
      const hours = (await (
        await fetch(`${api.url}/v1/admin/hours?from=${hourIso(hour)}&to=${hourIso(end)}`, { headers: admin })
      ).json()) as {
        hours: Array<{ revision: number; revisions: Array<{ revision: number; validClicks: number }> }>;
      };
      expect(hours.hours[0]).toMatchObject({
        revision: 2,
        revisions: [
          { revision: 1, validClicks: fromA },
          { revision: 2, validClicks: fromA + fromB },
        ],
      });
    } finally {
      api.server.closeAllConnections();
      api.server.close();
    }
  }, 240_000);

  it('partitions added while clicks flow: the hour waits for the archive to cover them, and is exact', async () => {
    const hour = base + 300 * HOUR_MS;
    const end = hour + HOUR_MS;
    const a = await clickService(end - 45_000);
    let sent = await clicks(a.service, a.clock, 24);
    const admin = kafka.admin();
    await admin.connect();
    try {
      await growPartitions(admin, topic, 6);
      await waitFor(
        'clicks in the new partitions',
        async () => {
          sent += await clicks(a.service, a.clock, 6);
          const offsets = await admin.fetchTopicOffsets(topic);
          return offsets.some((o) => o.partition >= 4 && Number(o.high) > 0);
        },
        30_000,
      );
    } finally {
      await admin.disconnect();
    }
    expect(a.clock()).toBeLessThan(end); // every click of the test is in the hour
    await waitFor('the click clock to pass the hour', async () => a.clock() > end + 6000, 60_000);
    const r = (await (await startCompaction(hour)).result()) as { validClicks: number };
    expect(r.validClicks).toBe(sent);
    expect(total(await minuteRows(pool, adIds(), hour, end))).toBe(sent);
  }, 180_000);

  it('an hour that gave up waiting for completeness shows as waiting (not failed), and the sweep finalizes it', async () => {
    const hour = base + 400 * HOUR_MS;
    const end = hour + HOUR_MS;
    const b = await clickService(end - 20_000, { gated: true });
    b.gate!.cut();
    const sent = await clicks(b.service, b.clock, 5);
    await waitFor('the click clock to pass the hour', async () => b.clock() > end + 6000, 60_000);
    const failing = await client.workflow.start('compactHour', {
      taskQueue,
      workflowId: compactHourId(hour),
      args: [{ hour: hourIso(hour), watermarkPollSeconds: 1, maxWatermarkWaitMinutes: 0 }],
    });
    await expect(failing.result()).rejects.toThrow();
    const api = await listen(
      createApiApp({ pool, speedStore: new PostgresSpeedStore(pool) }),
      0,
      '127.0.0.1',
    );
    const adminHours = async () =>
      (
        (await (
          await fetch(`${api.url}/v1/admin/hours?from=${hourIso(hour)}&to=${hourIso(end)}`, {
            headers: { authorization: `Bearer ${config.ADCLICK_ADMIN_KEY}` },
          })
        ).json()) as { hours: Array<{ state: string; waitingFor?: string }> }
      ).hours[0]!;
    try {
      // Waiting is not failing: `waiting`, with what it waits for.
      expect(await adminHours()).toMatchObject({
        state: 'waiting',
        waitingFor: expect.stringMatching(
          /^click process\(es\) still holding clicks of the hour.*gave up after 0 min/,
        ),
      });
      b.gate!.restore();
      await b.service.clickLog.whenDrained();
      const sweep = await client.workflow.execute('sweepHours', {
        taskQueue,
        workflowId: `sweep-${run}`,
        args: [{ from: hourIso(hour), to: hourIso(end) }],
      });
      expect(sweep).toEqual({ hours: [hourIso(hour)], finalized: [hourIso(hour)], failed: [] });
      expect(total(await minuteRows(pool, adIds(), hour, end))).toBe(sent);
      expect(await adminHours()).toMatchObject({ state: 'finalized' });
    } finally {
      api.server.closeAllConnections();
      api.server.close();
    }
  }, 180_000);

  it('a late click moves its impression into its own hour: both hours are finalized again, exact', async () => {
    const hour = base;
    const next = hour + HOUR_MS;
    const [a1, a2] = [cat.ads[0]!, cat.ads[1]!];
    const event = (adId: string, ts: number, status: ClickStatus, eventId = randomUUID()): ClickEvent => ({
      v: 1,
      eventId,
      adId,
      advertiserId: cat.advertiserId,
      ts,
      status,
      salt: saltOf(eventId, config.ADCLICK_KEY_SALTS),
    });
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    const send = (events: ClickEvent[]) =>
      producer.send({
        topic,
        acks: -1,
        messages: events.map((e) => ({ key: clickKey(e.adId, e.salt), value: encodeClickEvent(e) })),
      });
    const moving = randomUUID(); // first seen at next + 10 min; its earlier click arrives late
    const onlyDuplicate = randomUUID(); // its valid first click never reached the log (a failed append)
    await send([
      event(a1.adId, hour + 20 * MINUTE_MS, 'valid'),
      event(a2.adId, hour + 40 * MINUTE_MS, 'duplicate', onlyDuplicate),
      event(a1.adId, next + 10 * MINUTE_MS, 'valid', moving),
    ]);
    await waitFor('archived', async () => archiver.stats.events >= 3, 60_000);
    for (const h of [hour, next]) await (await startCompaction(h)).result();
    const m = (t: number) => `${a1.adId}|${minuteOf(t)}`;
    expect(await minuteRows(pool, [a1.adId, a2.adId], hour, next + HOUR_MS)).toEqual(
      new Map([
        [m(hour + 20 * MINUTE_MS), 1],
        [`${a2.adId}|${minuteOf(hour + 40 * MINUTE_MS)}`, 1], // counted, though Redis said duplicate
        [m(next + 10 * MINUTE_MS), 1],
      ]),
    );

    const archivedBefore = archiver.stats.events;
    await send([event(a1.adId, hour + 30 * MINUTE_MS, 'valid', moving)]);
    await waitFor('the late file', async () => archiver.stats.events > archivedBefore, 60_000);
    const late = (await finalizeLate(hour, next)) as { hours: Array<{ hour: string; revision: number }> };
    expect(late.hours.map((h) => [h.hour, h.revision])).toEqual([
      [hourIso(hour), 2],
      [hourIso(next), 2],
    ]);
    expect(await minuteRows(pool, [a1.adId, a2.adId], hour, next + HOUR_MS)).toEqual(
      new Map([
        [m(hour + 20 * MINUTE_MS), 1],
        [m(hour + 30 * MINUTE_MS), 1],
        [`${a2.adId}|${minuteOf(hour + 40 * MINUTE_MS)}`, 1],
      ]),
    );
    // Nothing new: another run changes nothing and keeps the revisions.
    expect(((await finalizeLate(hour, next)) as { hours: unknown[] }).hours).toEqual([]);
    await producer.disconnect();
  }, 180_000);
});
