// A Kafka that acks, but slower than the click log's deadline (the real broker behind the stack's
// Toxiproxy with 500 ms of latency on its answers). Before the hysteresis of the return to direct
// sends (DirectReturnGate, ingest/click-log-state.ts), the log flapped: the replayer caught up, the
// log sent directly again, the next batch waited out the whole deadline and was spooled, and again,
// at every click that found the replayer caught up. Now a return that ends in a miss doubles how
// long Kafka must be calm before the next one (1 s, 2 s, 4 s, ...): the misses grow with the
// logarithm of the slow period, not with the clicks; each click in between is answered after the
// spool's fsync. The log comes back by itself once Kafka is prompt, and every click event reaches
// the topic exactly once. On each Kafka client the lanes can use (ingest/lane-producers.ts).
import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { Toxiproxy, type Latency, type Proxy } from 'toxiproxy-node-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKafka } from '../../common/kafka.js';
import { sleep, waitFor } from '../../common/wait.js';
import { ClickLog } from '../../ingest/click-log.js';
import type { ClickLogState } from '../../ingest/click-log-state.js';
import { platformaticLanes, type ProducerClient } from '../../ingest/lane-producers.js';
import {
  ensureToxiproxy,
  kafkaProxiedListenerPort,
  kafkaProxyPort,
  toxiproxyUrl,
} from '../../stack/services/toxiproxy.js';
import { clickTopic, tempSpoolPath, validClickEvent as event } from '../support/click.js';

const DEADLINE_MS = 300; // ADCLICK_PRODUCE_DEADLINE_MS's default
// A click every 1.5 s for 15 s: few enough that the replayer catches up between them (at a high
// rate it never does while Kafka is slow: new clicks arrive during each replay send).
const EVERY_MS = 1500;
const CLICKS = 10;

describe.each<ProducerClient>(['kafkajs', 'platformatic'])(
  'click log on %s lanes with a slow Kafka',
  (client) => {
    let proxy: Proxy;
    let log: ClickLog;
    let drop: () => Promise<void>;
    let readAll: Awaited<ReturnType<typeof clickTopic>>['readAll'];
    const toSpooling: number[] = [];
    const lines: string[] = [];

    beforeAll(async () => {
      await ensureToxiproxy();
      const toxiproxy = new Toxiproxy(toxiproxyUrl);
      // The broker advertises this fixed port on its PROXIED listener (stack/services/toxiproxy.ts):
      // a proxy left there by a run that did not clean up is removed first.
      const listen = `127.0.0.1:${kafkaProxyPort}`;
      for (const p of Object.values(await toxiproxy.getAll()))
        if (p.listen === listen || p.listen === `localhost:${kafkaProxyPort}`) await p.remove();
      proxy = await toxiproxy.createProxy({
        name: `slow-kafka-test-${randomUUID()}`,
        listen,
        upstream: `127.0.0.1:${kafkaProxiedListenerPort}`,
      });
      const topic = `clicks-test-slow-${randomUUID()}`;
      ({ drop, readAll } = await clickTopic(createKafka('adclick-test-slow-kafka-admin'), topic));
      const proxied = new Kafka({
        clientId: 'adclick-test-slow-kafka',
        brokers: [listen],
        logLevel: logLevel.NOTHING,
      });
      log = await ClickLog.open({
        kafka: proxied,
        topic,
        spoolPath: tempSpoolPath(),
        deadlineMs: DEADLINE_MS,
        lingerMs: 5,
        batchMax: 100,
        lanes: 2,
        ...(client === 'platformatic' && {
          laneProducers: platformaticLanes({
            clientId: 'adclick-test-slow-kafka',
            brokers: [listen],
            metadataMaxAgeMs: 30_000,
            log: (m) => lines.push(m),
          }),
        }),
        log: (m) => lines.push(m),
        onTransition: (from: ClickLogState, to: ClickLogState) => {
          if (from.phase === 'direct' && to.phase === 'spooling') toSpooling.push(Date.now());
        },
      });
      await log.append(event()); // connects the producers
    });

    afterAll(async () => {
      await log?.close();
      await proxy?.remove().catch(() => undefined);
      await drop?.();
    });

    it('goes back to direct ever more rarely while Kafka is slow, returns once it is prompt, logs every click once', async () => {
      const slow = await proxy.addToxic<Latency>({
        name: 'slow',
        type: 'latency',
        stream: 'downstream',
        toxicity: 1,
        attributes: { latency: 500, jitter: 0 },
      });
      const answers: Array<Promise<number>> = [];
      const sent: string[] = [];
      const t0 = Date.now();
      for (let i = 0; i < CLICKS; i++) {
        const e = event();
        sent.push(e.eventId);
        const start = performance.now();
        answers.push(log.append(e).then(() => performance.now() - start));
        await sleep(Math.max(0, t0 + (i + 1) * EVERY_MS - Date.now()));
      }
      const ms = await Promise.all(answers);
      const waitedOutDeadline = ms.filter((m) => m >= DEADLINE_MS - 20).length;
      // Without the hysteresis every click waited out the deadline (seen: 10 of 10); with it, the
      // first and the flaps at 1 s, 2 s and 4 s of calm at most.
      expect(toSpooling.length, lines.join('\n')).toBeLessThanOrEqual(4);
      expect(waitedOutDeadline).toBeLessThanOrEqual(4);
      expect(log.state).toBe('spooling');

      await slow.remove();
      await waitFor('the log sends directly again', async () => log.state === 'direct', 15_000);
      for (let i = 0; i < 20; i++) {
        const e = event();
        sent.push(e.eventId);
        expect(await log.append(e)).toBe('kafka');
      }
      const logged = (await readAll(sent.length + 1)).map((c) => c.event.eventId);
      expect(logged).toHaveLength(sent.length + 1); // and the click that connected the producers
      expect(new Set(logged).size).toBe(logged.length); // none twice
      const inTopic = new Set(logged);
      expect(sent.filter((id) => !inTopic.has(id))).toEqual([]); // none lost
    }, 90_000);
  },
);
