// The speed layer end to end against real Kafka and the real store (PostgreSQL, and Pinot when the
// stack runs it): exact per-minute counts, duplicates once, kill -9 and restart, and a rebalance
// between two consumers — each checked through the store's read interface.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clickKey, encodeClickEvent, type ClickEvent } from '../../common/click-event.js';
import { config } from '../../common/config.js';
import { MINUTE_MS, minuteOf } from '../../common/time.js';
import {
  click,
  expectedCounts,
  sleep,
  SpeedRig,
  uniqueAdIds,
  waitFor,
  type StoreKind,
} from './speed-fixture.js';

const pinotUp = await fetch(`${config.PINOT_CONTROLLER_URL}/health`, { signal: AbortSignal.timeout(2000) })
  .then((r) => r.ok)
  .catch(() => false);
const stores: StoreKind[] = pinotUp ? ['postgres', 'pinot'] : ['postgres'];

describe.each(stores)('speed layer into %s', (kind) => {
  const rig = new SpeedRig(kind);
  const T = minuteOf(Date.now()) - 3 * MINUTE_MS;
  beforeAll(() => rig.setUp());
  afterAll(() => rig.tearDown());

  it('known clicks give exactly the expected per-minute counts; duplicates count once; salts are summed', async () => {
    const [adA, adB, hot] = uniqueAdIds(3) as [string, string, string];
    const events = [
      click(adA, T + 1_000, 0),
      click(adA, T + 59_999, 1),
      click(adA, T + MINUTE_MS, 0),
      click(adB, T + 30_000, 2),
      click(adB, T + 31_000, 2, 'expired'),
      click(adB, T + 32_000, 2, 'bad_signature'),
      click(adB, T + 33_000, 2, 'duplicate'),
    ];
    // A hot ad spread over 8 salts (8 keys, several partitions), 200 clicks in one minute.
    for (let i = 0; i < 200; i++) events.push(click(hot, T + 2 * MINUTE_MS + i * 100, i % 8));
    // An impression clicked twice as `valid` (e.g. a spool replay): counted once.
    const dup = click(adA, T + 5_000, 3);
    events.push(dup, { ...dup, ts: dup.ts + 2_000 });
    await rig.produce(events);
    const consumer = await rig.startConsumer();

    const expected = expectedCounts(events);
    expect(expected).toEqual({
      [`${adA}@${T}`]: 3,
      [`${adA}@${T + MINUTE_MS}`]: 1,
      [`${adB}@${T}`]: 1,
      [`${hot}@${T + 2 * MINUTE_MS}`]: 200,
    });
    const got = await rig.waitForCounts([adA, adB, hot], T, T + 10 * MINUTE_MS, expected);
    expect(got).toEqual(expected);
    // The range is half-open and per ad.
    expect(await rig.counts([adA], T + MINUTE_MS, T + 2 * MINUTE_MS)).toEqual({
      [`${adA}@${T + MINUTE_MS}`]: 1,
    });
    await rig.stopConsumer(consumer);
  });

  it('a backlog larger than one fetch per partition is counted to the end', async () => {
    // ~1.5 MB per partition: more than KafkaJS fetches at once (maxBytesPerPartition, 1 MB), so the
    // consumer must move its fetch position itself (it does not auto-resolve offsets).
    const ads = uniqueAdIds(8);
    const userAgent = 'x'.repeat(400);
    const events = Array.from({ length: 12_000 }, (_, i) => ({
      ...click(ads[i % ads.length]!, T + (i % 180) * 1000, i % 8),
      userAgent,
    }));
    await rig.produce(events);
    const consumer = await rig.startConsumer();
    const expected = expectedCounts(events);
    const got = await rig.waitForCounts(ads, T, T + 10 * MINUTE_MS, expected, 90_000);
    expect(got).toEqual(expected);
    await rig.stopConsumer(consumer);
  });

  it('kill -9 of the consumer process mid-stream, then a restart: counts stay exact', async () => {
    const ads = uniqueAdIds(20);
    const events = [];
    for (let i = 0; i < 6000; i++) events.push(click(ads[i % ads.length]!, T + (i % 240) * 1000, i % 4));
    const before = await rig.endOffsets();
    const first = rig.spawnProcess();
    await rig.produce(events.slice(0, 600));
    await waitFor('the first commits', async () => (await rig.committedOffsets()) > before + 300, 90_000);
    // Stream the rest while the process counts, and kill it once part of the stream is committed.
    const producing = (async () => {
      for (let i = 600; i < events.length; i += 200) {
        await rig.produce(events.slice(i, i + 200));
        await sleep(100);
      }
    })();
    await waitFor('more commits', async () => (await rig.committedOffsets()) > before + 1500, 90_000);
    first.kill('SIGKILL');
    const committedAtKill = (await rig.committedOffsets()) - before;
    expect(committedAtKill).toBeLessThan(events.length); // really mid-stream
    await producing;
    const second = rig.spawnProcess();
    const expected = expectedCounts(events);
    const got = await rig.waitForCounts(ads, T, T + 10 * MINUTE_MS, expected, 90_000);
    expect(got).toEqual(expected);
    await waitFor(
      'all offsets',
      async () => (await rig.committedOffsets()) === (await rig.endOffsets()),
      30_000,
    );
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
    expect(second.exitCode).toBe(0);
  });

  it('two consumers and a rebalance (one leaves mid-stream, one joins): counts stay exact', async () => {
    const ads = uniqueAdIds(16);
    const events: ClickEvent[] = [];
    const more = (n: number): ClickEvent[] => {
      const batch = Array.from({ length: n }, (_, j) => {
        const i = events.length + j;
        return click(ads[i % ads.length]!, T + (i % 200) * 1000, i % 8);
      });
      events.push(...batch);
      return batch;
    };
    // Keeps the stream going (200 clicks per ~100 ms) until `done` holds.
    const streamUntil = async (done: () => Promise<boolean> | boolean, what: string): Promise<void> => {
      const deadline = Date.now() + 90_000;
      while (!(await done())) {
        if (Date.now() > deadline) throw new Error(`timed out streaming until ${what}`);
        await rig.produce(more(200));
        await sleep(100);
      }
    };
    const c1 = await rig.startConsumer();
    const c2 = await rig.startConsumer();
    const before = await rig.committedOffsets();
    await streamUntil(async () => (await rig.committedOffsets()) > before + 800, 'the first commits');
    const c2Before = new Set(rig.claimsOf(c2));

    // c1 leaves while clicks keep coming: its partitions move to c2.
    let c1Gone = false;
    const leaving = rig.stopConsumer(c1).then(() => (c1Gone = true));
    await streamUntil(
      () => c1Gone && rig.claimsOf(c2).some((p) => !c2Before.has(p)),
      'c2 takes over partitions of c1',
    );
    await leaving;
    // c3 joins while clicks keep coming: some partitions move again.
    const c3 = await rig.startConsumer();
    await streamUntil(() => rig.claimsOf(c3).length > 0, 'c3 claims a partition');
    await rig.produce(more(1000));

    const expected = expectedCounts(events);
    const got = await rig.waitForCounts(ads, T, T + 10 * MINUTE_MS, expected, 90_000);
    expect(got).toEqual(expected);
    expect(events.length).toBeGreaterThan(2000);
    await rig.stopConsumer(c2);
    await rig.stopConsumer(c3);
  });

  // Last: it leaves one partition of the rig's topic stopped at a message no consumer can read.
  it('reads JSON and binary events alike; stops at a message it cannot decode instead of skipping it', async () => {
    const [ad] = uniqueAdIds(1) as [string];
    const at = (i: number) => click(ad, T + i * 1000, 5); // one key: one partition, in this order
    const before = [at(0), at(1), at(2)];
    const after = [at(3), at(4)];
    const key = clickKey(ad, 5);
    await rig.produceRaw([
      { key, value: encodeClickEvent(before[0]!, 'json') },
      ...before.slice(1).map((e) => ({ key, value: encodeClickEvent(e) })),
      { key, value: Buffer.from([0x09, 0xff, 0x00, 0x01]) },
      ...after.map((e) => ({ key, value: encodeClickEvent(e) })),
    ]);
    const consumer = await rig.startConsumer();
    const expected = { [`${ad}@${T}`]: 3 };
    expect(await rig.waitForCounts([ad], T, T + MINUTE_MS, expected)).toEqual(expected);
    await sleep(3000); // time enough to count past it, if it did
    expect(await rig.counts([ad], T, T + MINUTE_MS)).toEqual(expected);
    await rig.stopConsumer(consumer);
  });
});
