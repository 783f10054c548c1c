// The Kafka-transaction path (SPEED_STORE=pinot) without Pinot: the minute_counts topic read
// read_committed, last value per row key (what Pinot's FULL upsert keeps), summed per (ad, minute),
// must equal the exact counts — also after a consumer is replaced mid-stream. The sink sends 7 count
// rows per message (as for a table that unnests them), so messages also end part-full.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MINUTE_MS, minuteOf } from '../../common/time.js';
import { countRecordsOf, countRowKey, type MinuteCountRecord } from '../../speed-layer/kafka-sink.js';
import { click, expectedCounts, sleep, SpeedRig, uniqueAdIds, waitFor } from './speed-fixture.js';

describe('speed layer Kafka transactions into minute_counts', () => {
  const rig = new SpeedRig('pinot');
  beforeAll(() => rig.setUp({ withPinot: false, rowsPerMessage: 7 }));
  afterAll(() => rig.tearDown());

  async function readCounts(): Promise<Record<string, number>> {
    const consumer = rig.kafka.consumer({ groupId: `speed-read-${randomUUID()}`, readUncommitted: false });
    await consumer.connect();
    await consumer.subscribe({ topic: rig.countsTopic, fromBeginning: true });
    const latest = new Map<string, MinuteCountRecord>();
    let last = Date.now();
    await consumer.run({
      eachMessage: async ({ message }) => {
        for (const r of countRecordsOf(message.value!)) latest.set(countRowKey(r), r);
        last = Date.now();
      },
    });
    await waitFor('the counts topic to be read', async () => Date.now() - last > 1500, 30_000);
    await consumer.disconnect();
    const sums: Record<string, number> = {};
    for (const r of latest.values())
      sums[`${r.adId}@${r.minute}`] = (sums[`${r.adId}@${r.minute}`] ?? 0) + r.clicks;
    return sums;
  }

  it('cumulative parts under upsert sum to the exact counts, across a consumer replaced mid-stream', async () => {
    const T = minuteOf(Date.now()) - 4 * MINUTE_MS;
    const ads = uniqueAdIds(10);
    const events = [];
    for (let i = 0; i < 3000; i++) events.push(click(ads[i % ads.length]!, T + (i % 180) * 1000, i % 4));
    const dup = events[5]!;
    events.push({ ...dup, ts: dup.ts + 1000 });
    const c1 = await rig.startConsumer();
    await rig.produce(events.slice(0, 1500));
    await waitFor('the first commits', async () => (await rig.committedOffsets()) >= 700, 60_000);
    await rig.stopConsumer(c1);
    const c2 = await rig.startConsumer();
    await rig.produce(events.slice(1500));
    await waitFor(
      'all offsets',
      async () => (await rig.committedOffsets()) === (await rig.endOffsets()),
      60_000,
    );
    await sleep(500);
    await rig.stopConsumer(c2);
    expect(await readCounts()).toEqual(expectedCounts(events));
  });

  it('catches up a backlog whose flush holds more count parts than one Kafka message may (1 MB)', async () => {
    // 40,000 ads clicked once each while no consumer runs: each partition's first flush after the
    // catch-up starts holds ~10,000 parts, ~2 MB of records, above the broker's message.max.bytes.
    const T = minuteOf(Date.now()) - 2 * MINUTE_MS;
    const ads = uniqueAdIds(40_000);
    const events = ads.map((ad, i) => click(ad, T + (i % 60_000), i % 4));
    await rig.produce(events);
    const consumer = await rig.startConsumer();
    await waitFor(
      'the backlog to be committed',
      async () => (await rig.committedOffsets()) === (await rig.endOffsets()),
      90_000,
    );
    await rig.stopConsumer(consumer);
    const counts = await readCounts();
    const expected = expectedCounts(events);
    for (const key of Object.keys(expected)) expect(counts[key], key).toBe(expected[key]);
  });
});
