// The Kafka-transaction path (SPEED_STORE=pinot) without Pinot, in both count forms: the count topic
// read read_committed and summed per (ad, minute) as the table of its form does (every delta; or the
// last value per row key, what Pinot's FULL upsert keeps, for cumulative parts) must equal the exact
// counts — also after a consumer is replaced mid-stream. The sink sends 7 count rows per message (as
// for a table that unnests them), so messages also end part-full.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickEvent } from '../../common/click-event.js';
import { MINUTE_MS, minuteOf } from '../../common/time.js';
import {
  click,
  expectedCounts,
  readCountsTopic,
  sleep,
  SpeedRig,
  uniqueAdIds,
  waitFor,
} from './speed-fixture.js';

describe.each(['deltas', 'cumulative'] as const)(
  'speed layer Kafka transactions of %s count rows',
  (counts) => {
    const rig = new SpeedRig('pinot');
    beforeAll(() => rig.setUp({ withPinot: false, rowsPerMessage: 7, counts }));
    afterAll(() => rig.tearDown());

    it('the rows sum to the exact counts, across a consumer replaced mid-stream', async () => {
      const T = minuteOf(Date.now()) - 4 * MINUTE_MS;
      const ads = uniqueAdIds(10);
      const events: ClickEvent[] = [];
      for (let i = 0; i < 3000; i++) events.push(click(ads[i % ads.length]!, T + (i % 180) * 1000, i % 4));
      const dup = events[5]!;
      events.push({ ...dup, ts: dup.ts + 1000 });
      // In waves, each committed before the next is sent: every part changes in several flushes
      // (deltas then differ from running counts).
      const inWaves = async (from: number, to: number): Promise<void> => {
        for (let i = from; i < to; i += 300) {
          await rig.produce(events.slice(i, Math.min(i + 300, to)));
          await waitFor(
            'the wave to be committed',
            async () => (await rig.committedOffsets()) === (await rig.endOffsets()),
            60_000,
          );
        }
      };
      const c1 = await rig.startConsumer();
      await inWaves(0, 1500);
      await rig.stopConsumer(c1);
      const c2 = await rig.startConsumer();
      await inWaves(1500, events.length);
      await sleep(500);
      await rig.stopConsumer(c2);
      expect(await readCountsTopic(rig.kafka, rig.countsTopic, rig.countsForm)).toEqual(
        expectedCounts(events),
      );
    });
  },
);

describe('speed layer Kafka transactions: a large backlog', () => {
  const rig = new SpeedRig('pinot');
  beforeAll(() => rig.setUp({ withPinot: false, rowsPerMessage: 7 }));
  afterAll(() => rig.tearDown());

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
    const counts = await readCountsTopic(rig.kafka, rig.countsTopic, rig.countsForm);
    const expected = expectedCounts(events);
    for (const key of Object.keys(expected)) expect(counts[key], key).toBe(expected[key]);
  });
});
