// The click path when its dependencies fail, against the real services: Kafka unreachable during
// traffic (through a gated client: the shared broker keeps running for everyone else), a restart
// of the click service with events still spooled, a torn spool tail after a crash, Redis down.
import { randomUUID } from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeClickEvent, saltOf, type ClickEvent } from '../../common/click-event.js';
import { config } from '../../common/config.js';
import { createPool, migrate } from '../../common/db.js';
import { createKafka } from '../../common/kafka.js';
import { ClickLog } from '../../ingest/click-log.js';
import { clickPath, newImpression } from '../../ingest/impression.js';
import { startClickService } from '../../apps/click-service.js';
import { Spool } from '../../ingest/spool.js';
import { transitionAllowed, type ClickLogState } from '../../ingest/click-log-state.js';
import { encodeRecord } from '../../ingest/spool-format.js';
import {
  clickTopic,
  createAdvertiserWithAds,
  gatedKafka,
  tempSpoolPath,
  type CatalogueFixture,
  type LoggedClick,
} from '../support/click.js';
import { withDeadline } from '../../common/wait.js';

const secret = config.ADCLICK_SIGNING_SECRET;
const get = (url: string) => fetch(url, { redirect: 'manual' });
const spoolIn = tempSpoolPath;

/** Each partition's events must appear in the order the clicks were sent. */
function expectInSendOrder(logged: LoggedClick[], sent: string[]): void {
  const rank = new Map(sent.map((id, i) => [id, i]));
  const partitions = new Set(logged.map((l) => l.partition));
  for (const p of partitions) {
    const ranks = logged.filter((l) => l.partition === p).map((l) => rank.get(l.event.eventId)!);
    expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
  }
}

describe('click path with failing dependencies', () => {
  const pool = createPool(2);
  const kafka = createKafka('click-degraded-test');
  let cat: CatalogueFixture;
  const drops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    await migrate(pool);
    cat = await createAdvertiserWithAds(pool, 3);
  });
  afterAll(async () => {
    for (const d of drops) await d();
    await pool.end();
  });

  async function newTopic() {
    const topic = `clicks-test-${randomUUID()}`;
    const io = await clickTopic(kafka, topic);
    drops.push(io.drop);
    return { topic, io };
  }

  async function click(
    base: string,
    n: number,
  ): Promise<{ impressionId: string; location: string | null; status: number }> {
    const ad = cat.ads[n % cat.ads.length]!;
    const imp = newImpression(secret, ad.adId, 3600, Date.now());
    const r = await get(base + clickPath(imp));
    expect(r.headers.get('location')).toBe(ad.redirectUrl);
    return { impressionId: imp.impressionId, location: r.headers.get('location'), status: r.status };
  }

  it('Kafka unreachable during traffic: every click redirected, then each in Kafka exactly once, in order', async () => {
    const { topic, io } = await newTopic();
    const gate = gatedKafka('click-degraded-gated');
    const transitions: Array<[ClickLogState, ClickLogState]> = [];
    const service = await startClickService({
      port: 0,
      topic,
      spoolPath: spoolIn('spool-0.log'),
      kafka: gate.kafka,
      pool,
      onTransition: (from, to) => transitions.push([from, to]),
      log: () => undefined,
    });
    try {
      const sent: string[] = [];
      const statuses: number[] = [];
      for (let i = 0; i < 60; i++) {
        if (i === 15) gate.cut();
        if (i === 45) gate.restore();
        const c = await click(service.url, i);
        sent.push(c.impressionId);
        statuses.push(c.status);
        if (i === 44) expect(service.clickLog.state).toBe('spooling');
      }
      expect(statuses.every((s) => s === 302)).toBe(true);
      await withDeadline(service.clickLog.whenDrained(), 60_000, 'spool replay: timed out');
      expect(service.clickLog.state).toBe('direct');
      // Every transition the log made is one its state machine allows (click-log-state.ts), and it
      // went through spooling and emptying back to direct.
      for (const [from, to] of transitions)
        expect(transitionAllowed(from, to), `${from.phase} → ${to.phase}`).toBe(true);
      const phases = transitions.map(([, to]) => to.phase);
      expect(phases[0]).toBe('spooling');
      expect(phases).toContain('emptying');
      expect(phases.at(-1)).toBe('direct');

      const logged = await io.readAll(60, { settleMs: 2000 });
      expect(logged).toHaveLength(60);
      expect(new Set(logged.map((l) => l.event.eventId))).toEqual(new Set(sent));
      expect(logged.every((l) => l.event.status === 'valid')).toBe(true);
      expectInSendOrder(logged, sent);
    } finally {
      await service.close();
    }
  });

  it('Kafka cut and restored under concurrent traffic: every click redirected and in Kafka exactly once', async () => {
    const { topic, io } = await newTopic();
    const gate = gatedKafka('click-degraded-concurrent');
    const service = await startClickService({
      port: 0,
      topic,
      spoolPath: spoolIn('spool-0.log'),
      kafka: gate.kafka,
      pool,
      lanes: 4,
      log: () => undefined,
    });
    try {
      const sent: string[] = [];
      const statuses: number[] = [];
      let next = 0;
      const TOTAL = 300;
      const worker = async () => {
        while (next < TOTAL) {
          const n = next++;
          if (n === 80) gate.cut();
          if (n === 220) gate.restore();
          const c = await click(service.url, n);
          sent.push(c.impressionId);
          statuses.push(c.status);
        }
      };
      await Promise.all(Array.from({ length: 16 }, worker));
      expect(statuses.filter((s) => s !== 302)).toEqual([]);
      await withDeadline(service.clickLog.whenDrained(), 60_000, 'spool replay: timed out');
      const logged = await io.readAll(TOTAL, { settleMs: 2000 });
      expect(logged).toHaveLength(TOTAL);
      expect(new Set(logged.map((l) => l.event.eventId))).toEqual(new Set(sent));
    } finally {
      await service.close();
    }
  });

  it('spooled events survive a restart of the click service and are replayed exactly once, in order', async () => {
    const { topic, io } = await newTopic();
    const spoolPath = spoolIn('spool-0.log');
    const first = gatedKafka('click-degraded-first');
    const a = await startClickService({
      port: 0,
      topic,
      spoolPath,
      kafka: first.kafka,
      pool,
      log: () => undefined,
    });
    const sent: string[] = [];
    await click(a.url, 0).then((c) => sent.push(c.impressionId)); // Kafka up: sent directly
    first.cut(); // …and down for the rest of this instance's life, as for a process that dies
    for (let i = 1; i < 25; i++) {
      const c = await click(a.url, i);
      expect(c.status).toBe(302);
      sent.push(c.impressionId);
    }
    // 24, or 25 when the first send (connecting) missed its deadline and was acked late.
    expect(a.clickLog.spoolDepth).toBeGreaterThanOrEqual(24);
    await a.close();

    const b = await startClickService({
      port: 0,
      topic,
      spoolPath,
      kafka: createKafka('click-degraded-second'),
      pool,
      log: () => undefined,
    });
    try {
      await withDeadline(b.clickLog.whenDrained(), 60_000, 'spool replay after restart: timed out');
      for (let i = 25; i < 30; i++) sent.push((await click(b.url, i)).impressionId);
      const logged = await io.readAll(30, { settleMs: 2000 });
      expect(logged).toHaveLength(30);
      expect(new Set(logged.map((l) => l.event.eventId))).toEqual(new Set(sent));
      expectInSendOrder(logged, sent);
    } finally {
      await b.close();
    }
  });

  it('a torn record at the end of the spool (crash mid-write) is cut off, the whole ones replayed', async () => {
    const { topic, io } = await newTopic();
    const spoolPath = spoolIn('spool-0.log');
    const events: ClickEvent[] = [0, 1, 2].map((n) => {
      const eventId = randomUUID();
      return {
        v: 1,
        eventId,
        adId: cat.ads[n]!.adId,
        advertiserId: cat.advertiserId,
        ts: Date.now(),
        status: 'valid',
        salt: saltOf(eventId, 8),
      };
    });
    const spool = await Spool.open(spoolPath);
    await spool.append(events.map((e) => encodeClickEvent(e)));
    await spool.close();
    const torn = encodeRecord(encodeClickEvent({ ...events[0]!, eventId: randomUUID() }));
    await appendFile(spoolPath, torn.subarray(0, torn.length - 7));

    const messages: string[] = [];
    const log = await ClickLog.open({
      kafka,
      topic,
      spoolPath,
      deadlineMs: 300,
      lingerMs: 1,
      batchMax: 100,
      log: (m) => messages.push(m),
    });
    try {
      await withDeadline(log.whenDrained(), 30_000, 'spool replay: timed out');
      expect(messages.some((m) => /torn tail of \d+ bytes/.test(m))).toBe(true);
      const logged = await io.readAll(3, { settleMs: 1500 });
      expect(logged.map((l) => l.event.eventId).sort()).toEqual(events.map((e) => e.eventId).sort());
    } finally {
      await log.close();
    }
  });

  it('Redis unreachable: clicks are still redirected and logged as valid, and /metrics counts the fail-open', async () => {
    const { topic, io } = await newTopic();
    const service = await startClickService({
      port: 0,
      topic,
      spoolPath: spoolIn('spool-0.log'),
      kafka,
      pool,
      redisUrl: 'redis://127.0.0.1:1',
      redisStartWaitMs: 200, // it never comes: do not wait the default 3 s for it
    });
    try {
      const ad = cat.ads[0]!;
      const imp = newImpression(secret, ad.adId, 3600, Date.now());
      for (let i = 0; i < 2; i++) {
        const r = await get(service.url + clickPath(imp));
        expect(r.status).toBe(302);
        expect(r.headers.get('location')).toBe(ad.redirectUrl);
      }
      const logged = await io.readAll(2);
      expect(logged).toHaveLength(2);
      // Without Redis the duplicate cannot be told apart here; the batch layer dedups by eventId.
      expect(logged.map((l) => [l.event.eventId, l.event.status])).toEqual([
        [imp.impressionId, 'valid'],
        [imp.impressionId, 'valid'],
      ]);
      // Clicks fail open without Redis, so the process stays ready (in the load balancer); /readyz
      // lists Redis as down.
      const ready = await get(`${service.url}/readyz`);
      expect(ready.status).toBe(200);
      expect(((await ready.json()) as { checks: Record<string, string> }).checks.redis).toBe('down');
      const metrics = await (await get(`${service.url}/metrics`)).text();
      expect(Number(/adclick_redis_fail_open_total (\d+)/.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
    } finally {
      await service.close();
    }
  });
});
