// `clicks` grows twice while traffic runs (a private topic pair and Pinot table), 2 → 4 → 6
// partitions: ensureTopics grows the live topics, the producer and the speed layer's consumer group
// pick the new partitions up (metadata refresh), the sink grows minute_counts to follow (first
// growth) or sees it grown (second), Pinot starts consuming the new minute_counts partitions, and
// the provisional counts are exact: every click produced, before and after the growths, counted
// once (bound: 0 missed, 0 extra). The clicks are unique: a duplicate click of an impression whose
// key moved partition is caught by the click service's Redis check, not by the speed layer.
import { randomUUID } from 'node:crypto';
import type { Admin } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clickKey, encodeClickEvent, type ClickEvent } from '../../common/click-event.js';
import { clicksTopicSpec, createKafka, ensureTopics, minuteCountsTopicSpec } from '../../common/kafka.js';
import { minuteOf } from '../../common/time.js';
import { SpeedConsumer } from '../../speed-layer/consumer.js';
import { config } from '../../common/config.js';
import { KafkaTransactionSink } from '../../speed-layer/kafka-sink.js';
import { PinotSpeedStore } from '../../speed-layer/pinot-speed-store.js';
import { consumeNewPartitions, dropPinotTable, ensurePinotTables } from '../../speed-layer/pinot-tables.js';
import { click, expectedCounts, readCountsTopic, sleep, uniqueAdIds, waitFor } from './speed-fixture.js';

const id = randomUUID().slice(0, 8);
const clicksTopic = `grow-clicks-${id}`;
const countsTopic = `grow-counts-${id}`;
const groupId = `grow-${id}`;
const table = `grow_${id}`;
const BEFORE = 2;
const AFTER = 6;

async function partitionsOf(admin: Admin, topic: string): Promise<number> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  return topics[0]?.partitions.length ?? 0;
}

async function endOffsets(admin: Admin): Promise<Map<number, number>> {
  return new Map((await admin.fetchTopicOffsets(clicksTopic)).map((o) => [o.partition, Number(o.high)]));
}

describe('clicks partitions added under traffic', () => {
  // Metadata refreshed every 2 s instead of KAFKA_METADATA_MAX_AGE_MS (30 s): same path, shorter test.
  const kafka = createKafka(`grow-test-${id}`, { metadataMaxAgeMs: 2000 });
  const admin = kafka.admin();
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  const store = new PinotSpeedStore(undefined, table);
  const consumerLog: string[] = [];
  let consumer: SpeedConsumer;

  beforeAll(async () => {
    await admin.connect();
    await ensureTopics(admin, [
      clicksTopicSpec({ topic: clicksTopic, partitions: BEFORE }),
      minuteCountsTopicSpec({ topic: countsTopic, clicksTopic, partitions: BEFORE }),
    ]);
    const format = await ensurePinotTables({ table, topic: countsTopic });
    expect(format.manyRowsPerMessage).toBe(true);
    await producer.connect();
    const sink = new KafkaTransactionSink(kafka, {
      groupId,
      clicksTopic,
      countsTopic,
      rowsPerMessage: config.SPEED_COUNT_ROWS_PER_MESSAGE,
      onCountsTopicGrown: () => consumeNewPartitions(table),
      log: (m) => consumerLog.push(m),
    });
    consumer = new SpeedConsumer({
      kafka,
      topic: clicksTopic,
      groupId,
      sink,
      storeName: 'pinot',
      openMinutes: 5,
      flushIntervalMs: 200,
      sessionTimeoutMs: 6000,
      log: (m) => consumerLog.push(m),
    });
    await consumer.start();
  });

  afterAll(async () => {
    await consumer?.stop().catch(() => undefined);
    await producer.disconnect();
    await dropPinotTable(table).catch(() => undefined);
    await admin.deleteTopics({ topics: [clicksTopic, countsTopic] }).catch(() => undefined);
    await admin.disconnect();
    await store.close();
  });

  it('the topics grow, the new partitions are used and counted, and the counts stay exact', async () => {
    const ads = uniqueAdIds(30);
    const events: ClickEvent[] = [];
    let stop = false;
    let i = 0;
    // ~200 clicks/s, keys adId:salt over 30 ads x 8 salts, as the click service writes them.
    const traffic = (async () => {
      while (!stop) {
        const batch = Array.from({ length: 20 }, () => {
          const ad = ads[i % ads.length]!;
          return click(ad, Date.now(), Math.floor(i++ / ads.length) % 8);
        });
        events.push(...batch);
        await producer.send({
          topic: clicksTopic,
          acks: -1,
          messages: batch.map((e) => ({ key: clickKey(e.adId, e.salt), value: encodeClickEvent(e) })),
        });
        await sleep(100);
      }
    })();

    const newPartitionsUsed = async (from: number, to: number): Promise<void> => {
      await waitFor(
        `the producer to use partitions ${from}..${to - 1}`,
        async () => {
          const ends = await endOffsets(admin);
          return [...Array(to).keys()].slice(from).every((p) => (ends.get(p) ?? 0) >= 100);
        },
        30_000,
      );
    };
    await sleep(3000);
    // The knob on a live system, as a process that ensures only `clicks` does it (the archiver, the
    // stack): minute_counts is left to the speed layer's sink to follow.
    let changes = await ensureTopics(admin, [clicksTopicSpec({ topic: clicksTopic, partitions: 4 })]);
    expect(changes.grown).toEqual([{ topic: clicksTopic, from: 2, to: 4 }]);
    let grownAt = Date.now();
    await newPartitionsUsed(2, 4);
    const usedAfterMs = [Date.now() - grownAt];
    // ... and as the click service does at its start: both topics grow, the sink only sees it.
    changes = await ensureTopics(admin, [
      clicksTopicSpec({ topic: clicksTopic, partitions: AFTER }),
      minuteCountsTopicSpec({ topic: countsTopic, clicksTopic, partitions: AFTER }),
    ]);
    expect(changes.grown).toEqual([
      { topic: clicksTopic, from: 4, to: AFTER },
      { topic: countsTopic, from: 4, to: AFTER },
    ]);
    grownAt = Date.now();
    await newPartitionsUsed(4, AFTER);
    usedAfterMs.push(Date.now() - grownAt);
    await sleep(2000);
    stop = true;
    await traffic;

    // Every partition, old and new, committed to its end.
    await waitFor(
      'the speed layer to commit every partition to its end',
      async () => {
        const ends = await endOffsets(admin);
        const [committed] = await admin.fetchOffsets({ groupId, topics: [clicksTopic] });
        return (
          ends.size === AFTER &&
          [...ends].every(
            ([p, end]) => Number(committed?.partitions.find((c) => c.partition === p)?.offset) === end,
          )
        );
      },
      60_000,
    );
    expect(await partitionsOf(admin, countsTopic)).toBe(AFTER);
    expect(consumerLog.filter((l) => /failed/.test(l))).toEqual([]);

    const from = minuteOf(events[0]!.ts);
    const to = minuteOf(events.at(-1)!.ts) + 60_000;
    const expected = expectedCounts(events);
    expect(await readCountsTopic(kafka, countsTopic, config.SPEED_PINOT_COUNTS)).toEqual(expected);

    // Pinot: the counts of the new partitions' keys live only in the new minute_counts partitions.
    const deadline = Date.now() + 60_000;
    let pinot: Record<string, number> = {};
    while (Date.now() < deadline) {
      const rows = await store.minuteCounts(ads, from, to).catch(() => []);
      pinot = Object.fromEntries(rows.map((r) => [`${r.adId}@${r.minute}`, r.clicks]));
      if (JSON.stringify(sorted(pinot)) === JSON.stringify(sorted(expected))) break;
      await sleep(500);
    }
    expect(pinot).toEqual(expected);
    console.log(
      `${events.length} clicks; new partitions used ${usedAfterMs.map((ms) => (ms / 1000).toFixed(1)).join(' s and ')} s after each growth`,
    );
  });
});

const sorted = (o: Record<string, number>): Array<[string, number]> =>
  Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1));
